// The report store beside the key store, in its engine.
import type { KeyStore } from '../keys/key-store.ts';
import type { PgKeyStore } from '../keys/pg-store.ts';
import type { ReportStore } from './report-store.ts';
import { SqliteReportStore } from './sqlite-report-store.ts';

/**
 * The reports beside the key store, in its engine. `read-only` (for `status`
 * and the status page) never writes: no tables are created, and PostgreSQL
 * sessions are read-only transactions.
 */
export async function openReportStore(store: Pick<KeyStore, 'engine' | 'dbFile'>, mode: 'read-write' | 'read-only' = 'read-write'): Promise<ReportStore> {
  if (store.engine === 'sqlite') return mode === 'read-only' ? SqliteReportStore.openReadOnly(store.dbFile) : SqliteReportStore.open(store.dbFile);
  // Loaded only here: a relay on its own SQLite store never loads the PostgreSQL client.
  const { PgReportStore } = await import('./pg-report-store.ts');
  return new PgReportStore((store as PgKeyStore).openPool(), mode === 'read-only');
}
