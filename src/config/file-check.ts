// Every file the configuration names, checked as the relay will read it: the
// listener's TLS key and certificate (listen.tls) and the TSIG secret of each
// zone published by RFC 2136 (dns.publish[].tsig.secretFile), the PKCS#11
// module and PIN file of keys.pkcs11 (the PIN itself is never shown). One step, run
// by `serve` before it starts, by a SIGHUP reload before it replaces anything
// (a failure keeps the running configuration), and by `config check`, so the
// three refuse the same files with the same line. Commands that never listen
// or publish (keys, queue, status, ...) do not run it: a broken certificate
// must not stop an administrator from looking at keys or the queue.
import { UserError } from '../common/errors.ts';
import { accessSync, constants } from 'node:fs';
import { readTsigKey } from '../dns/publish/tsig.ts';
import { readSecretFile } from '../keys/sealing.ts';
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

export function checkFiles(config: Pick<Config, 'listen' | 'dns'> & { keys?: Pick<Config['keys'], 'pkcs11'> }): FileProblem[] {
  const problems: FileProblem[] = [];
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
    if (zone.method !== 'rfc2136') return;
    try {
      readTsigKey(zone.tsig);
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      problems.push({ setting: `dns.publish.${i}.tsig.secretFile`, message: err.message, hint: err.hint });
    }
  });
  const token = config.keys?.pkcs11;
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
    try {
      readSecretFile(token.pinFile, 'the PIN file');
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      problems.push({ setting: 'keys.pkcs11.pinFile', message: err.message, hint: err.hint });
    }
  }
  return problems;
}

/** Throws the first problem as "<config file>: <setting>: <what> — <how to mend it>", as a configuration error reads. */
export function requireUsableFiles({ config, path }: LoadedConfig): void {
  const first = checkFiles(config)[0];
  if (first) throw new UserError(`${path ?? 'embedded default'}: ${first.setting}: ${first.message}`, first.hint);
}
