// OpenDKIM as a milter on loopback, with its own configuration, RSA-2048 key
// and pid file in a private folder; run in the foreground as our child, so it
// is stopped by its own PID.
import { execFileSync, spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chownSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DOMAIN } from '../message.ts';
import { OPENDKIM } from './install.ts';
import { stopByPid, waitForPort } from './process.ts';

export const OPENDKIM_SELECTOR = 'peer';

export interface RunningOpenDkim {
  pid: number;
  records: Record<string, string>;
  stop(): Promise<void>;
}

/** Starts OpenDKIM signing mail of example.com with a new RSA-2048 key, as the milter on 127.0.0.1:`port`. */
export async function startOpenDkim(dir: string, port: number): Promise<RunningOpenDkim> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyFile = join(dir, 'peer.private');
  writeFileSync(keyFile, privateKey.export({ type: 'pkcs1', format: 'pem' }), { mode: 0o600 });
  // OpenDKIM refuses a key that someone else than its own user could read.
  const uid = Number(execFileSync('id', ['-u', 'opendkim'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'opendkim'], { encoding: 'utf8' }).trim());
  chownSync(keyFile, uid, gid);
  const config = join(dir, 'opendkim.conf');
  writeFileSync(
    config,
    [
      'Syslog no',
      'Mode s',
      `Domain ${DOMAIN}`,
      `Selector ${OPENDKIM_SELECTOR}`,
      `KeyFile ${keyFile}`,
      `Socket inet:${port}@127.0.0.1`,
      'Canonicalization relaxed/relaxed',
      'SignatureAlgorithm rsa-sha256',
      'OversignHeaders From',
      'InternalHosts 127.0.0.1',
      'UserID opendkim:opendkim',
      // The key lies below /tmp, which everyone may write; the key file itself is 0600 and OpenDKIM's own.
      'RequireSafeKeys false',
      '',
    ].join('\n'),
  );
  const child = spawn(OPENDKIM, ['-f', '-x', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let errors = '';
  child.stderr!.on('data', (c: Buffer) => (errors = (errors + c.toString()).slice(-2000)));
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`opendkim exited with ${code}: ${errors.trim()}`))));
  try {
    await Promise.race([waitForPort(port), exited]);
  } catch (err) {
    await stopByPid(child.pid!);
    throw err;
  }
  exited.catch(() => {});
  const p = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  return {
    pid: child.pid!,
    records: { [`${OPENDKIM_SELECTOR}._domainkey.${DOMAIN}`]: `v=DKIM1; k=rsa; p=${p}` },
    stop: () => stopByPid(child.pid!),
  };
}
