// The ids of the messages a spool's queue.db holds, read beside a running
// relay (a second connection in WAL mode): small messages have no file in
// msg/, so a file listing no longer tells what is queued.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';

export function queuedIds(spoolDir: string): string[] {
  const file = join(spoolDir, 'queue.db');
  if (!existsSync(file)) return [];
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT id FROM messages ORDER BY id').pluck().all() as string[];
  } finally {
    db.close();
  }
}

/** Each queued message's octets, from queue.db for a small one, else its file in msg/. */
export function queuedMessages(spoolDir: string): { id: string; octets: Buffer }[] {
  const file = join(spoolDir, 'queue.db');
  if (!existsSync(file)) return [];
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT id, octets FROM messages ORDER BY id').all() as { id: string; octets: Buffer | null }[];
    return rows.map(({ id, octets }) => ({ id, octets: octets ?? readFileSync(join(spoolDir, 'msg', `${id}.eml`)) }));
  } finally {
    db.close();
  }
}
