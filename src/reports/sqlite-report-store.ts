// Aggregate reports in keys.db, beside a SQLite key store (tables of report-tables.ts).
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { explainDatabaseError, openDatabase, type Db } from '../keys/database.ts';
import type { AggregateReport } from './report-model.ts';
import { parseRecord, pruneBefore, type RecordRow, type ReportStore, type StoredRecord } from './report-store.ts';
import { ensureReportTables } from './report-tables.ts';

const RECORDS = `SELECT r.domain, r.org_name AS orgName, r.report_id AS reportId, r.begin_at AS begin, r.end_at AS "end",
                c.source_ip AS sourceIp, c.count, c.disposition, c.dkim_aligned AS dkimAligned, c.spf_aligned AS spfAligned,
                c.header_from AS headerFrom, c.dkim, c.spf
         FROM dmarc_records c JOIN dmarc_reports r ON r.id = c.report
         WHERE r.end_at >= ? AND (? IS NULL OR r.domain = ?)
         ORDER BY r.domain, r.end_at, c.id`;

export class SqliteReportStore implements ReportStore {
  readonly #db: Db;
  /** Read-only and the tables were never created: nothing is stored yet. */
  readonly #empty: boolean;

  private constructor(db: Db, empty = false) {
    this.#db = db;
    this.#empty = empty;
  }

  /** The key store's database file (KeyStore.dbFile); the tables are created if missing. */
  static open(dbFile: string): SqliteReportStore {
    const db = openDatabase(dbFile);
    ensureReportTables(db);
    return new SqliteReportStore(db);
  }

  /** The same file opened read-only: a missing file or missing tables read as no reports. */
  static openReadOnly(dbFile: string): SqliteReportStore {
    if (!existsSync(dbFile)) return new SqliteReportStore(new Database(':memory:'), true);
    let db: Db;
    try {
      db = new Database(dbFile, { readonly: true, fileMustExist: true, timeout: 5000 });
    } catch (err) {
      throw explainDatabaseError(err, dbFile);
    }
    const tables = db.prepare(`SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name IN ('dmarc_reports', 'dmarc_records')`).get() as {
      n: number;
    };
    return new SqliteReportStore(db, tables.n < 2);
  }

  close(): void {
    this.#db.close();
  }

  add(report: AggregateReport, nowMs: number): 'imported' | 'duplicate' {
    return this.#db
      .transaction(() => {
        const inserted = this.#db
          .prepare(
            `INSERT INTO dmarc_reports (org_name, report_id, domain, format, email, generator, begin_at, end_at, policy, errors, imported_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (org_name, report_id) DO NOTHING`,
          )
          .run(
            report.orgName,
            report.reportId,
            report.policy.domain,
            report.format,
            report.email,
            report.generator ?? null,
            report.begin,
            report.end,
            JSON.stringify(report.policy),
            JSON.stringify(report.errors),
            Math.floor(nowMs / 1000),
          );
        if (inserted.changes === 0) return 'duplicate' as const;
        const row = this.#db.prepare(
          `INSERT INTO dmarc_records (report, source_ip, count, disposition, dkim_aligned, spf_aligned, header_from, envelope_from, dkim, spf, reasons)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        );
        for (const r of report.records) {
          row.run(
            inserted.lastInsertRowid,
            r.sourceIp,
            r.count,
            r.disposition,
            r.dkimAligned,
            r.spfAligned,
            r.headerFrom,
            r.envelopeFrom ?? null,
            JSON.stringify(r.dkim),
            JSON.stringify(r.spf),
            JSON.stringify(r.reasons),
          );
        }
        return 'imported' as const;
      })
      .immediate();
  }

  prune(nowMs: number, keepDays: number): number {
    const before = pruneBefore(nowMs, keepDays);
    return this.#db
      .transaction(() => {
        this.#db.prepare('DELETE FROM dmarc_records WHERE report IN (SELECT id FROM dmarc_reports WHERE end_at < ?)').run(before);
        return this.#db.prepare('DELETE FROM dmarc_reports WHERE end_at < ?').run(before).changes;
      })
      .immediate();
  }

  records(since: number, domain?: string): StoredRecord[] {
    if (this.#empty) return [];
    const rows = this.#db.prepare(RECORDS).all(since, domain ?? null, domain ?? null) as RecordRow[];
    return rows.map(parseRecord);
  }

  reportCounts(since: number, domain?: string): Map<string, number> {
    if (this.#empty) return new Map();
    const rows = this.#db
      .prepare('SELECT domain, COUNT(*) AS n FROM dmarc_reports WHERE end_at >= ? AND (? IS NULL OR domain = ?) GROUP BY domain')
      .all(since, domain ?? null, domain ?? null) as { domain: string; n: number }[];
    return new Map(rows.map((r) => [r.domain, r.n]));
  }
}
