// The key store's SQLite database: metadata only, never key material.
import Database from 'better-sqlite3';
import { prepareKeptFile, SQLITE_SIBLINGS } from '../common/file-create.ts';
import { UserError } from '../common/errors.ts';
import { migrate } from './migrations.ts';

export type Db = Database.Database;
export type Statement = Database.Statement;

/**
 * Opens (creating if need be) the database in WAL mode at the current schema
 * version; a busy database waits up to `timeoutMs`.
 */
export function openDatabase(file: string, timeoutMs = 5000): Db {
  try {
    prepareKeptFile(file, 0o600, SQLITE_SIBLINGS); // SQLite gives its -wal and -shm files the same mode; no link is followed
    const db = new Database(file, { timeout: timeoutMs });
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    migrate(db); // brings a store made by any earlier release to the current schema
    return db;
  } catch (err) {
    throw explainDatabaseError(err, file);
  }
}

/** Turns SQLite's terse errors into what to do about them. */
export function explainDatabaseError(err: unknown, file: string): Error {
  const code = (err as { code?: string }).code ?? '';
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return new UserError(
      `key store database ${file} is locked by another process`,
      'wait a moment and retry; if it stays locked, look for a stuck dkim-relay process',
    );
  }
  if (code.startsWith('SQLITE_CANTOPEN') || code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_PERM')) {
    return new UserError(`cannot open key store database ${file} for writing`, 'check that the directory exists and belongs to the user running dkim-relay');
  }
  if (code.startsWith('SQLITE_CONSTRAINT')) {
    return new UserError('another process changed the key store at the same moment', 'run the command again');
  }
  if (code.startsWith('SQLITE_CORRUPT') || code.startsWith('SQLITE_NOTADB')) {
    return new UserError(`key store database ${file} is damaged`, 'restore it from backup');
  }
  return err instanceof Error ? err : new Error(String(err));
}
