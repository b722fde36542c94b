// rotation.revealPrivateKeys: once a key is revoked, its private key is
// written to a directory meant for publication (a web site, say). Anyone can
// then forge old signatures of that key, so a leaked old message no longer
// proves who wrote it (the repudiation argument of dkim-rotate). The file is
// 0644 on purpose: it is for everyone to read. The price: DKIM no longer
// vouches for any message signed with that key, however old.
import { chmodSync, existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { recordName } from '../keys/names.ts';
import type { StoredKey } from '../keys/store.ts';

/** Writes the key's PEM to `dir` unless it is there already; returns the file written, or null. */
export function revealPrivateKey(dir: string, key: StoredKey, pem: () => string): string | null {
  if (key.state !== 'revoked') throw new Error(`only a revoked key is revealed, not a ${key.state} one`);
  const file = join(dir, `${recordName(key.selector, key.domain)}.pem`);
  if (existsSync(file)) return null;
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, pem(), { mode: 0o644 });
  chmodSync(tmp, 0o644); // whatever the umask: it is for publication
  renameSync(tmp, file);
  return file;
}
