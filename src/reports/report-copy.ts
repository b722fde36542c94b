// `keys migrate` brings a relay's stored aggregate reports along: the rows of
// keys.db's report tables copied into the PostgreSQL ones, which have the same
// columns. Each report is recognised by (org_name, report_id), as an import
// recognises it, so running the copy again adds nothing, and a report another
// relay of the fleet already stored is not stored twice.
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import type pg from 'pg';
import { explainDatabaseError } from '../keys/database.ts';

export interface ReportCopy {
  /** Reports in keys.db. */
  rows: number;
  /** Of them, stored by this copy (the others were there already). */
  added: number;
}

const REPORT_COLUMNS = ['org_name', 'report_id', 'domain', 'format', 'email', 'generator', 'begin_at', 'end_at', 'policy', 'errors', 'imported_at'];
const RECORD_COLUMNS = ['source_ip', 'count', 'disposition', 'dkim_aligned', 'spf_aligned', 'header_from', 'envelope_from', 'dkim', 'spf', 'reasons'];
/** Records inserted per statement: a report of many thousands of records is a few round trips. */
const BATCH = 500;

type Row = Record<string, unknown>;

const placeholders = (count: number, from = 0) => Array.from({ length: count }, (_, i) => `$${from + i + 1}`).join(', ');

/** Copies every stored report of the SQLite file `dbFile` through `client`, which the caller holds in a transaction. */
export async function copyReports(dbFile: string, client: pg.ClientBase): Promise<ReportCopy> {
  if (!existsSync(dbFile)) return { rows: 0, added: 0 };
  let db: Database.Database;
  try {
    db = new Database(dbFile, { readonly: true, fileMustExist: true, timeout: 5000 });
  } catch (err) {
    throw explainDatabaseError(err, dbFile);
  }
  try {
    const tables = db.prepare(`SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name IN ('dmarc_reports', 'dmarc_records')`).get() as {
      n: number;
    };
    if (tables.n < 2) return { rows: 0, added: 0 };
    const reports = db.prepare(`SELECT id, ${REPORT_COLUMNS.join(', ')} FROM dmarc_reports ORDER BY id`).all() as Row[];
    const records = db.prepare(`SELECT ${RECORD_COLUMNS.join(', ')} FROM dmarc_records WHERE report = ? ORDER BY id`);
    let added = 0;
    for (const report of reports) {
      const inserted = await client.query<{ id: string }>(
        `INSERT INTO dmarc_reports (${REPORT_COLUMNS.join(', ')}) VALUES (${placeholders(REPORT_COLUMNS.length)})
         ON CONFLICT (org_name, report_id) DO NOTHING RETURNING id`,
        REPORT_COLUMNS.map((c) => report[c]),
      );
      const id = inserted.rows[0]?.id;
      if (id === undefined) continue;
      added++;
      const rows = records.all(report.id) as Row[];
      for (let at = 0; at < rows.length; at += BATCH) {
        const batch = rows.slice(at, at + BATCH);
        const width = RECORD_COLUMNS.length + 1;
        await client.query(
          `INSERT INTO dmarc_records (report, ${RECORD_COLUMNS.join(', ')}) VALUES ${batch.map((_, i) => `(${placeholders(width, i * width)})`).join(', ')}`,
          batch.flatMap((r) => [id, ...RECORD_COLUMNS.map((c) => r[c])]),
        );
      }
    }
    return { rows: reports.length, added };
  } finally {
    db.close();
  }
}
