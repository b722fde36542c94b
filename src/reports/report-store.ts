// Stored aggregate reports: each once by (org_name, report_id), kept for
// reports.keepDays after the end of the period it covers.
import { openDatabase, type Db } from '../keys/database.ts';
import type { AggregateReport, DkimResult, SpfResult } from './report-model.ts';
import { ensureReportTables } from './report-tables.ts';

const DAY_SECONDS = 86_400;

/** One stored record with what the summary needs of its report. */
export interface StoredRecord {
  domain: string;
  orgName: string;
  reportId: string;
  begin: number;
  end: number;
  sourceIp: string;
  count: number;
  disposition: string;
  dkimAligned: string;
  spfAligned: string;
  headerFrom: string;
  dkim: DkimResult[];
  spf: SpfResult[];
}

export class ReportStore {
  readonly #db: Db;

  private constructor(db: Db) {
    this.#db = db;
  }

  /** The key store's database file (KeyStore.dbFile). */
  static open(dbFile: string): ReportStore {
    const db = openDatabase(dbFile);
    ensureReportTables(db);
    return new ReportStore(db);
  }

  close(): void {
    this.#db.close();
  }

  /** Stores a report unless one with its org_name and report_id is stored: then nothing changes. */
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

  /** Removes the reports whose period ended more than keepDays ago; returns how many. */
  prune(nowMs: number, keepDays: number): number {
    const before = Math.floor(nowMs / 1000) - keepDays * DAY_SECONDS;
    return this.#db
      .transaction(() => {
        this.#db.prepare('DELETE FROM dmarc_records WHERE report IN (SELECT id FROM dmarc_reports WHERE end_at < ?)').run(before);
        return this.#db.prepare('DELETE FROM dmarc_reports WHERE end_at < ?').run(before).changes;
      })
      .immediate();
  }

  /** Every record of reports whose period ended at or after `since` (seconds), optionally of one domain. */
  records(since: number, domain?: string): StoredRecord[] {
    const rows = this.#db
      .prepare(
        `SELECT r.domain, r.org_name AS orgName, r.report_id AS reportId, r.begin_at AS begin, r.end_at AS "end",
                c.source_ip AS sourceIp, c.count, c.disposition, c.dkim_aligned AS dkimAligned, c.spf_aligned AS spfAligned,
                c.header_from AS headerFrom, c.dkim, c.spf
         FROM dmarc_records c JOIN dmarc_reports r ON r.id = c.report
         WHERE r.end_at >= ? AND (? IS NULL OR r.domain = ?)
         ORDER BY r.domain, r.end_at, c.id`,
      )
      .all(since, domain ?? null, domain ?? null) as (Omit<StoredRecord, 'dkim' | 'spf'> & { dkim: string; spf: string })[];
    return rows.map((r) => ({ ...r, dkim: JSON.parse(r.dkim) as DkimResult[], spf: JSON.parse(r.spf) as SpfResult[] }));
  }

  /** How many reports are stored, per domain: for the summary's header. */
  reportCounts(since: number, domain?: string): Map<string, number> {
    const rows = this.#db
      .prepare('SELECT domain, COUNT(*) AS n FROM dmarc_reports WHERE end_at >= ? AND (? IS NULL OR domain = ?) GROUP BY domain')
      .all(since, domain ?? null, domain ?? null) as { domain: string; n: number }[];
    return new Map(rows.map((r) => [r.domain, r.n]));
  }
}
