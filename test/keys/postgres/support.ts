// Shared by the PostgreSQL key store tests.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A key-encryption key file as `openssl rand -base64 32` makes it, mode 0600. */
export function kekFile(dir: string, name = 'kek'): string {
  const file = join(dir, name);
  writeFileSync(file, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  return file;
}
