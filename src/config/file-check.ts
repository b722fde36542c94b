// Every file the configuration names, checked as the relay will read it: the
// listener's TLS key and certificate (listen.tls) and the TSIG secret of each
// zone published by RFC 2136 (dns.publish[].tsig.secretFile), the PKCS#11
// module and PIN file of keys.pkcs11, a PostgreSQL key store's password and
// encryption key files, and the report mailbox's IMAP password file (no secret
// is ever shown). One step, run
// by `serve` before it starts, by a SIGHUP reload before it replaces anything
// (a failure keeps the running configuration), and by `config check`, so the
// three refuse the same files with the same line. Commands that never listen
// or publish (keys, queue, status, ...) do not run it: a broken certificate
// must not stop an administrator from looking at keys or the queue.
import { UserError } from '../common/errors.ts';
import { accessSync, constants } from 'node:fs';
import { readTsigKey } from '../dns/publish/tsig.ts';
import { readEncryptionKey, readSecretFile } from '../keys/sealing.ts';
import { readPasswordFile } from './imap-password-file.ts';
import type { LoadedConfig } from './load.ts';
import type { Config } from './schema.ts';
import { loadTls, TlsFileProblem } from './tls-files.ts';

export interface FileProblem {
  /** The setting that names the file, e.g. listen.tls.cert or dns.publish.0.tsig.secretFile. */
  setting: string;
  /** What is wrong, naming the file. */
  message: string;
  /** How to mend it. */
  hint: string | undefined;
}

export function checkFiles(
  config: Pick<Config, 'listen' | 'dns'> & {
    keys?: Pick<Config['keys'], 'pkcs11' | 'passwordFile' | 'encryptionKeyFile'>;
    reports?: Pick<Config['reports'], 'imap'>;
  },
): FileProblem[] {
  const problems: FileProblem[] = [];
  // Each reader throws a UserError naming the file, what is wrong and how to mend it.
  const check = (setting: string, read: () => unknown) => {
    try {
      read();
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      problems.push({ setting, message: err.message, hint: err.hint });
    }
  };
  const tls = config.listen.tls;
  if (tls) {
    try {
      loadTls(tls);
    } catch (err) {
      if (!(err instanceof TlsFileProblem)) throw err;
      problems.push({ setting: `listen.tls.${err.field}`, message: err.message, hint: err.hint });
    }
  }
  config.dns.publish.forEach((zone, i) => {
    if (zone.method === 'rfc2136') check(`dns.publish.${i}.tsig.secretFile`, () => readTsigKey(zone.tsig));
  });
  const { passwordFile, encryptionKeyFile, pkcs11: token } = config.keys ?? {};
  if (passwordFile !== undefined) check('keys.passwordFile', () => readSecretFile(passwordFile, 'the database password file'));
  if (encryptionKeyFile !== undefined) check('keys.encryptionKeyFile', () => readEncryptionKey(encryptionKeyFile, 'the encryption key file'));
  if (token) {
    try {
      accessSync(token.module, constants.R_OK);
    } catch {
      problems.push({
        setting: 'keys.pkcs11.module',
        message: `${token.module} cannot be read`,
        hint: "install the HSM vendor's PKCS#11 library or correct the path",
      });
    }
    check('keys.pkcs11.pinFile', () => readSecretFile(token.pinFile, 'the PIN file'));
  }
  const imap = config.reports?.imap;
  if (imap) check('reports.imap.passwordFile', () => readPasswordFile(imap.passwordFile, 'the IMAP password file'));
  return problems;
}

/** Throws the first problem as "<config file>: <setting>: <what> — <how to mend it>", as a configuration error reads. */
export function requireUsableFiles({ config, path }: LoadedConfig): void {
  const first = checkFiles(config)[0];
  if (first) throw new UserError(`${path ?? 'embedded default'}: ${first.setting}: ${first.message}`, first.hint);
}
