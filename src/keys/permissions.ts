// The key store directory must be ours alone (0700). A directory that others
// could enter is tightened; one reached through a symbolic link is never
// changed, since the link may lead anywhere (imagine /tmp).
//
// root may run the key commands in a store that belongs to the relay's own
// user: everything created there gets that user as owner, as if the user had
// made it, since the relay refuses key files it does not own.
import { chownSync, closeSync, constants, fchmodSync, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { UserError } from '../common/errors.ts';

export interface Owner {
  uid: number;
  gid: number;
}

/** The owner to give what root creates in `dir`: the directory's, unless that is root or this is not root. */
export function ownerToKeep(dir: string): Owner | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const { uid, gid } = statSync(dir);
  return uid === 0 ? undefined : { uid, gid };
}

export interface PrivateDir {
  /** The directory was open to others and is now 0700. */
  tightened: boolean;
  /** Key files it held while it was open to others (0 for a fresh checkout's empty keys/). */
  exposedKeyFiles: number;
}

/** Creates the store directory 0700, or tightens one that is wider (a fresh checkout is 0755). */
export function ensurePrivateDir(dir: string): PrivateDir {
  try {
    const created = mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (created !== undefined) keepParentOwner(created, dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if ((code === 'EEXIST' || code === 'ENOENT') && isLink(dir)) return checkLinkedDir(dir);
    if (code === 'EEXIST' || code === 'ENOTDIR') throw notADirectory(dir);
    throw new UserError(
      `cannot create the key store directory ${dir}: ${code ?? (err as Error).message}`,
      'check keys.dir and the permissions of its parent directory',
    );
  }
  let fd: number;
  try {
    // Opened without following a link, and tightened through the descriptor: no path swap in between.
    fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // With O_DIRECTORY, Linux reports a symbolic link as ENOTDIR rather than ELOOP.
    if ((code === 'ELOOP' || code === 'ENOTDIR') && isLink(dir)) return checkLinkedDir(dir);
    if (code === 'ENOTDIR') throw notADirectory(dir);
    throw new UserError(`cannot open the key store directory ${dir}: ${code ?? (err as Error).message}`, 'check keys.dir and its permissions');
  }
  try {
    const mode = fstatSync(fd).mode & 0o777;
    if ((mode & 0o077) === 0) return { tightened: false, exposedKeyFiles: 0 };
    const exposedKeyFiles = readdirSync(dir).filter((name) => name.endsWith('.pem')).length;
    fchmodSync(fd, 0o700);
    return { tightened: true, exposedKeyFiles };
  } finally {
    closeSync(fd);
  }
}

/** Directories root just made, from `first` down to `dir`, take the owner of the directory they were made in. */
function keepParentOwner(first: string, dir: string): void {
  const owner = ownerToKeep(dirname(resolve(first)));
  if (!owner) return;
  let path = resolve(first);
  chownSync(path, owner.uid, owner.gid);
  for (const part of relative(path, resolve(dir)).split(sep).filter(Boolean)) {
    path = join(path, part);
    chownSync(path, owner.uid, owner.gid);
  }
}

/** A symbolic link is accepted when it leads to a private directory; it is never tightened. */
function checkLinkedDir(dir: string): PrivateDir {
  let target: string;
  let mode: number;
  try {
    target = realpathSync(dir);
    mode = statSync(target).mode & 0o7777;
  } catch {
    throw new UserError(`the key store directory ${dir} is a symbolic link that leads nowhere`, 'point keys.dir at an existing directory of mode 0700');
  }
  if (mode & 0o077) {
    throw new UserError(
      `the key store directory ${dir} is a symbolic link to ${target}, which others can read (mode ${mode.toString(8).padStart(4, '0')}), and is left as it is`,
      `if ${target} is the key store's own directory, run: chmod 700 ${target}; otherwise set keys.dir to a directory of its own`,
    );
  }
  return { tightened: false, exposedKeyFiles: 0 };
}

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

function notADirectory(dir: string): UserError {
  return new UserError(`the key store directory ${dir} is not a directory`, 'set keys.dir to a directory (it is created 0700 when missing)');
}
