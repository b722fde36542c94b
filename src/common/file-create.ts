// Creating the files the relay writes (spool, intake, outbox, keys, revealed
// keys), so that a symbolic link someone planted in one of those
// directories is never followed:
//
//   - a new file is opened O_CREAT|O_EXCL|O_NOFOLLOW: a name already taken,
//     by a file or by a link (dangling or not), is an error, never someone
//     else's file written through (open(2): with O_EXCL a link fails
//     whatever it points to);
//   - a file the relay keeps (its SQLite databases) is opened O_NOFOLLOW:
//     a link in its place is refused;
//   - the mode is set on the open descriptor (fchmod), so it is exactly the
//     one meant whatever the umask, and on the file that was opened;
//   - a finished file reaches its final name by rename(2), which replaces a
//     link found there rather than following it.
//
// A refused link is reported as one line naming the path and how to mend it.
import { closeSync, constants, fchmodSync, fstatSync, lstatSync, mkdirSync, openSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { UserError } from './errors.ts';

const NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
const KEPT = constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW;

/** A symbolic link where the relay writes a file: never followed. */
export class LinkRefusedError extends UserError {
  readonly code = 'ELOOP';
  readonly path: string;
  constructor(path: string) {
    super(`${path} is a symbolic link, which dkim-relay does not write through`, 'remove the link, and check who else can write to its directory');
    this.name = 'LinkRefusedError';
    this.path = path;
  }
}

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/** A link in the way becomes LinkRefusedError; other errors (EEXIST, ENOSPC, …) pass as they are. */
function explained(err: unknown, path: string): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  return (code === 'ELOOP' || code === 'EEXIST') && isLink(path) ? new LinkRefusedError(path) : err;
}

/** A new file at `path`, open for writing, of exactly `mode`. */
export async function createFile(path: string, mode: number): Promise<FileHandle> {
  let handle: FileHandle;
  try {
    handle = await open(path, NEW, mode);
  } catch (err) {
    throw explained(err, path);
  }
  try {
    // On the event loop: fchmod(2) changes the inode in memory, far cheaper than a trip through the thread pool.
    fchmodSync(handle.fd, mode);
  } catch (err) {
    await handle.close().catch(() => undefined);
    throw err;
  }
  return handle;
}

/** createFile for synchronous callers: a descriptor. */
export function createFileSync(path: string, mode: number): number {
  let fd: number;
  try {
    fd = openSync(path, NEW, mode);
  } catch (err) {
    throw explained(err, path);
  }
  try {
    fchmodSync(fd, mode);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return fd;
}

/**
 * Makes sure the file the relay keeps at `path` (created if missing) is a
 * regular file, not reached through a link, of exactly `mode`; then the
 * caller opens it by name (SQLite does). Sibling files SQLite makes beside a
 * database (`-wal`, `-shm`, `-journal`) are checked too: none may be a link.
 */
export function prepareKeptFile(path: string, mode: number, siblings: readonly string[] = []): void {
  for (const sibling of siblings) if (isLink(`${path}${sibling}`)) throw new LinkRefusedError(`${path}${sibling}`);
  let fd: number;
  try {
    fd = openSync(path, KEPT, mode);
  } catch (err) {
    throw explained(err, path);
  }
  try {
    if (!fstatSync(fd).isFile()) throw Object.assign(new Error(`${path} is not a regular file`), { code: 'EISDIR' });
    fchmodSync(fd, mode);
  } finally {
    closeSync(fd);
  }
}

/** SQLite's files beside a database. */
export const SQLITE_SIBLINGS = ['-wal', '-shm', '-journal'] as const;

/**
 * Creates `dir` (and missing parents) with `mode`; a directory created here
 * gets exactly `mode` (the umask does not narrow or widen it). One that
 * exists is left as it is. Returns whether it was created.
 */
export function makeDirectory(dir: string, mode: number): boolean {
  const first = mkdirSync(dir, { recursive: true, mode });
  if (first === undefined) return false;
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  try {
    fchmodSync(fd, mode);
  } finally {
    closeSync(fd);
  }
  return true;
}

/** Throws LinkRefusedError when `dir` is a symbolic link (a folder inside one the relay owns must be its own). */
export function refuseLinkedDirectory(dir: string): void {
  if (isLink(dir)) throw new LinkRefusedError(dir);
}
