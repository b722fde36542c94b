// One relay per spool: `serve` holds this lock on queue.dir for the life of
// its process, taken before anything there is read or changed. A second
// relay on the same spool would run start-up recovery on a live queue: remove
// intake files still being written, move aside messages whose rows are not
// committed yet, make recipients in delivery due again.
//
// The lock is SQLite's write lock on a small database, <queue.dir>/serve.lock,
// in WAL mode: an open write transaction, held until the process ends. It is
// an fcntl lock on serve.lock-shm, so the kernel drops it when the process
// dies however it dies (SIGKILL, power cut): no stale lock to clean up. In WAL
// mode readers are not blocked by the writer, so a second relay can still read
// who holds it, from the row written just before the transaction began.
//
// The `queue` commands never take it: they open queue.db, as before, beside the
// running relay.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { UserError } from '../common/errors.ts';

export const LOCK_FILE = 'serve.lock';

export class SpoolLock {
  readonly dir: string;
  readonly #db: Database.Database;

  private constructor(dir: string, db: Database.Database) {
    this.dir = dir;
    this.#db = db;
  }

  /**
   * Takes the lock on `dir` (made if missing, as the spool would be), or
   * throws a UserError naming the process that holds it.
   */
  static acquire(dir: string, pid = process.pid): SpoolLock {
    const file = join(dir, LOCK_FILE);
    let db: Database.Database | undefined;
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      // timeout 0: a held lock is an answer at once, not a wait.
      db = new Database(file, { timeout: 0 });
      db.pragma('journal_mode = WAL');
      // The row only says who holds the lock now: it need not survive a power cut, so no fsync is waited for.
      db.pragma('synchronous = OFF');
      db.exec('CREATE TABLE IF NOT EXISTS owner (id INTEGER PRIMARY KEY CHECK (id = 1), pid INTEGER NOT NULL, since TEXT NOT NULL)');
      // Who we are, committed so that others can read it; then the transaction that is the lock.
      // Should another process slip in between, it holds the lock and its own row says so.
      db.exec('BEGIN IMMEDIATE');
      db.prepare('INSERT OR REPLACE INTO owner (id, pid, since) VALUES (1, ?, ?)').run(pid, new Date().toISOString());
      db.exec('COMMIT');
      db.exec('BEGIN IMMEDIATE');
      return new SpoolLock(dir, db);
    } catch (err) {
      const holder = db && isBusy(err) ? ownerPid(db) : undefined;
      db?.close();
      if (isBusy(err)) {
        throw new UserError(
          `queue.dir ${dir} is in use by pid ${holder ?? 'unknown'}`,
          'one relay per spool: stop that one, or give this one a queue.dir of its own',
        );
      }
      const code = (err as NodeJS.ErrnoException).code ?? '';
      throw new UserError(
        `cannot lock queue.dir ${dir} (${code || (err as Error).message})`,
        'check that the directory exists and belongs to the user running dkim-relay',
      );
    }
  }

  /** Gives the lock back (the process ending does the same). */
  release(): void {
    if (!this.#db.open) return;
    this.#db.exec('ROLLBACK');
    this.#db.close();
  }
}

function isBusy(err: unknown): boolean {
  const code = String((err as { code?: unknown }).code ?? '');
  return code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED');
}

function ownerPid(db: Database.Database): number | undefined {
  try {
    return (db.prepare('SELECT pid FROM owner WHERE id = 1').get() as { pid: number } | undefined)?.pid;
  } catch {
    return undefined;
  }
}
