// fsync of one file, run in libuv's thread pool and shared by every caller
// that asks while one is under way: a caller is answered by the first fsync
// that starts after it asked, so whatever it wrote before asking is on disk.
import { closeSync, fsync, openSync } from 'node:fs';
import { promisify } from 'node:util';

export class FileSync {
  readonly path: string;
  readonly #fsync: (path: string) => Promise<void>;
  #running: Promise<void> | null = null;
  #next: Promise<void> | null = null;

  constructor(path: string, fsync: (path: string) => Promise<void> = fsyncPath) {
    this.path = path;
    this.#fsync = fsync;
  }

  sync(): Promise<void> {
    if (!this.#running) return this.#start();
    // The fsync under way may have started before this caller's write: wait for the one after it.
    this.#next ??= this.#running.then(
      () => this.#start(),
      () => this.#start(),
    );
    return this.#next;
  }

  #start(): Promise<void> {
    this.#next = null;
    const run = this.#fsync(this.path).finally(() => {
      if (this.#running === run) this.#running = null;
    });
    this.#running = run;
    return run;
  }
}

/**
 * Opened afresh each time, so the file now at `path` is the one synced
 * (fsync acts on the file, whichever descriptor is used); a directory too.
 * Only the fsync goes to the thread pool: opening an existing name read-only
 * and closing it take microseconds on the event loop, where each trip through
 * the pool waits for a thread and then for the loop's next turn.
 */
export async function fsyncPath(path: string): Promise<void> {
  const fd = openSync(path, 'r');
  try {
    await fsyncAsync(fd);
  } finally {
    closeSync(fd);
  }
}

/** fsync(2) of an open descriptor, in the thread pool. */
export const fsyncAsync = promisify(fsync);

/**
 * fsyncPath for SQLite's WAL file: one that is gone has nothing left to
 * sync, since SQLite removes it only after copying it into the database and
 * syncing that.
 */
export async function fsyncWal(path: string): Promise<void> {
  try {
    await fsyncPath(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
