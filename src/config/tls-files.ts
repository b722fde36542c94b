// listen.tls: the key and certificate files must be readable PEM, hold what
// their names say, and belong together. Checked with the configuration's other
// files (file-check.ts: serve, SIGHUP reload, config check) and read again at
// start-up.
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { UserError } from '../common/errors.ts';

export interface TlsFiles {
  key: string;
  cert: string;
}

/** What is wrong with one of the two files; `field` is `key` or `cert`. */
export class TlsFileProblem extends UserError {
  readonly field: keyof TlsFiles;
  constructor(field: keyof TlsFiles, message: string, hint: string) {
    super(message, hint);
    this.field = field;
  }
}

/** Reads and checks both files; throws a TlsFileProblem naming the file at fault. */
export function loadTls(files: TlsFiles): { key: Buffer; cert: Buffer } {
  const key = read(files, 'key');
  const cert = read(files, 'cert');
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new TlsFileProblem('key', `${files.key} holds no usable private key`, 'give an unencrypted PEM private key (-----BEGIN PRIVATE KEY-----)');
  }
  // A private key inside the certificate file leaks wherever certificates are copied; it is usually a swap of the two.
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(cert.toString('latin1'))) {
    throw new TlsFileProblem(
      'cert',
      `${files.cert} holds a private key`,
      'give the certificate file here (-----BEGIN CERTIFICATE-----) and the key in listen.tls.key',
    );
  }
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch {
    throw new TlsFileProblem('cert', `${files.cert} holds no PEM certificate`, 'give the certificate file (-----BEGIN CERTIFICATE-----), chain after it');
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new TlsFileProblem(
      'cert',
      `${files.cert} does not match the key ${files.key}`,
      'give the certificate issued for this key, or the key it was issued for',
    );
  }
  return { key, cert };
}

function read(files: TlsFiles, field: keyof TlsFiles): Buffer {
  const path = files[field];
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      throw new TlsFileProblem(field, `${path} does not exist`, 'check the path (relative paths start from the directory the relay runs in)');
    if (code === 'EISDIR') throw new TlsFileProblem(field, `${path} is a directory`, 'give the PEM file itself');
    throw new TlsFileProblem(field, `cannot read ${path} (${code ?? (err as Error).message})`, 'make it readable by the user the relay runs as');
  }
}
