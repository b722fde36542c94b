// rotation.revealPrivateKeys: once a key is revoked, its private key is
// written to a directory meant for publication (a web site, say). Anyone can
// then forge old signatures of that key, so a leaked old message no longer
// proves who wrote it (the repudiation argument of dkim-rotate). The file is
// 0644 on purpose: it is for everyone to read. The price: DKIM no longer
// vouches for any message signed with that key, however old.
//
// That directory may be writable by others (a web server's account): the
// file is written under a fresh random name that no link can be waiting at
// (src/common/file-create.ts), then renamed into place, which replaces a link at
// the final name instead of writing where it points.
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, lstatSync, mkdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createFileSync } from '../common/file-create.ts';
import { recordName } from '../common/names.ts';
import type { StoredKey } from '../keys/store.ts';

/** Writes the key's PEM to `dir` unless it is there already; returns the file written, or null. */
export function revealPrivateKey(dir: string, key: StoredKey, pem: () => string): string | null {
  if (key.state !== 'revoked') throw new Error(`only a revoked key is revealed, not a ${key.state} one`);
  const file = join(dir, `${recordName(key.selector, key.domain)}.pem`);
  if (isFile(file)) return null;
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const tmp = join(dir, `.${recordName(key.selector, key.domain)}.pem.${randomBytes(8).toString('hex')}.tmp`);
  const fd = createFileSync(tmp, 0o644); // whatever the umask: it is for publication
  try {
    try {
      writeSync(fd, pem());
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  return file;
}

/** A regular file of its own at `path` (a link, even to a file, is not one). */
function isFile(path: string): boolean {
  try {
    return lstatSync(path).isFile();
  } catch {
    return false;
  }
}
