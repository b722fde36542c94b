// Private keys must be readable by us alone (SPEC §4). A key file that
// others can read is refused, not "fixed": someone may already have it.
import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { UserError } from '../errors.ts';

/** Creates the store directory 0700, or tightens one that is wider (a fresh checkout is 0755). */
export function ensurePrivateDir(dir: string): { tightened: boolean } {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const mode = statSync(dir).mode & 0o777;
  if ((mode & 0o077) === 0) return { tightened: false };
  chmodSync(dir, 0o700);
  return { tightened: true };
}

/** Throws a UserError saying how to mend it when a key file is missing or too open. */
export function assertPrivateFile(file: string, what: string): void {
  let mode: number;
  try {
    mode = statSync(file).mode & 0o777;
  } catch {
    throw new UserError(
      `key file ${file} for ${what} is missing`,
      'restore it from backup, or revoke this key and generate a new one',
    );
  }
  if (mode & 0o077) {
    throw new UserError(
      `key file ${file} for ${what} is readable by others (mode ${mode.toString(8).padStart(4, '0')})`,
      `run: chmod 600 ${file} — and consider the key compromised if others could read it`,
    );
  }
}
