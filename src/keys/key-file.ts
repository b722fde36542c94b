// Reading a private key file. It is opened without following a symbolic link
// (a link could lead the relay to sign with a key that is not the store's),
// and refused unless it is a regular file that only its owner can read: a key
// others could read is not "fixed" by tightening it, since someone may already
// have it.
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { UserError } from '../common/errors.ts';

export type KeyFileProblemKind = 'missing' | 'unreadable' | 'symlink' | 'not a file' | 'readable by others' | 'damaged' | 'token unavailable';

/** A key file that cannot be used; the message names the file, the hint says how to mend it. */
export class KeyFileError extends UserError {
  readonly problem: KeyFileProblemKind;
  constructor(problem: KeyFileProblemKind, message: string, hint: string) {
    super(message, hint);
    this.name = 'KeyFileError';
    this.problem = problem;
  }
}

export interface KeyFileContent {
  /** Changes whenever the file is replaced, rewritten, chmodded or chowned (ctime). */
  stamp: string;
  /** The PEM text; null when the stamp equals the one the caller already holds. */
  text: string | null;
}

const RESTORE = 'restore it from backup, or retire and revoke this key and generate a new one';

/**
 * Opens `file` (the key of `what`, e.g. s1._domainkey.example.com), checks it
 * through the open descriptor, so nothing can be swapped in between, and reads it
 * unless its stamp is still `knownStamp`.
 */
export function readKeyFile(file: string, what: string, knownStamp?: string): KeyFileContent {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO put in place of the key must not hang the relay.
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    throw openError(err as NodeJS.ErrnoException, file, what);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) {
      throw new KeyFileError('not a file', `key file ${file} for ${what} is not a regular file`, `remove what is there and ${RESTORE}`);
    }
    const mode = stat.mode & 0o777;
    if (mode & 0o077) {
      throw new KeyFileError(
        'readable by others',
        `key file ${file} for ${what} is readable by others (mode ${mode.toString(8).padStart(4, '0')})`,
        `run: chmod 600 ${file} — and consider the key compromised if others could read it`,
      );
    }
    const stamp = `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeMs}:${stat.ctimeMs}`;
    if (stamp === knownStamp) return { stamp, text: null };
    let text: string;
    try {
      text = readFileSync(fd, 'utf8');
    } catch (err) {
      throw openError(err as NodeJS.ErrnoException, file, what);
    }
    return { stamp, text };
  } finally {
    closeSync(fd);
  }
}

function openError(err: NodeJS.ErrnoException, file: string, what: string): Error {
  switch (err.code) {
    case 'ENOENT':
      return new KeyFileError('missing', `key file ${file} for ${what} is missing`, RESTORE);
    case 'ELOOP':
      return new KeyFileError(
        'symlink',
        `key file ${file} for ${what} is a symbolic link, which the key store does not follow`,
        `put the key file itself in its place: cp --remove-destination "$(readlink -f ${file})" ${file} && chmod 600 ${file}`,
      );
    case 'EACCES':
    case 'EPERM':
      return new KeyFileError(
        'unreadable',
        `key file ${file} for ${what} cannot be read by user ${currentUser()}`,
        `run: chown ${currentUser()} ${file} && chmod 600 ${file}`,
      );
    case 'EISDIR':
      return new KeyFileError('not a file', `key file ${file} for ${what} is not a regular file`, `remove what is there and ${RESTORE}`);
    default:
      return new KeyFileError(
        'unreadable',
        `key file ${file} for ${what} cannot be read (${err.code ?? err.message})`,
        `check the disk and the file, or ${RESTORE}`,
      );
  }
}

function currentUser(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'the relay user');
  }
}
