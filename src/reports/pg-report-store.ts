// Aggregate reports in the fleet's PostgreSQL key store (tables of
// src/keys/pg-schema.ts version 3). Idempotent across relays: the unique
// (org_name, report_id) makes a second relay's insert of the same report wait
// for the first one's transaction, then do nothing, so a report every relay
// of a fleet reads from one mailbox, or imports from a file, is stored once.
import type pg from 'pg';
import type { AggregateReport } from './report-model.ts';
import { parseRecord, pruneBefore, type RecordRow, type ReportStore, type StoredRecord } from './report-store.ts';

/** Records inserted per statement: a report of many thousands of records is a few round trips. */
const BATCH = 500;
const RECORD_COLUMNS = 11;

const RECORDS = `SELECT r.domain, r.org_name AS "orgName", r.report_id AS "reportId", r.begin_at AS begin, r.end_at AS "end",
                        c.source_ip AS "sourceIp", c.count, c.disposition, c.dkim_aligned AS "dkimAligned", c.spf_aligned AS "spfAligned",
                        c.header_from AS "headerFrom", c.dkim, c.spf
                 FROM dmarc_records c JOIN dmarc_reports r ON r.id = c.report
                 WHERE r.end_at >= $1 AND ($2::text IS NULL OR r.domain = $2)
                 ORDER BY r.domain, r.end_at, c.id`;

export class PgReportStore implements ReportStore {
  readonly #pool: pg.Pool;

  /** `readOnly`: every session is a read-only one (default_transaction_read_only), so nothing can be written by mistake. */
  constructor(pool: pg.Pool, readOnly = false) {
    this.#pool = pool;
    if (readOnly) pool.on('connect', (client) => void client.query('SET default_transaction_read_only = on').catch(() => {}));
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }

  async add(report: AggregateReport, nowMs: number): Promise<'imported' | 'duplicate'> {
    const client = await this.#pool.connect();
    try {
      await client.query('BEGIN');
      const inserted = await client.query<{ id: string }>(
        `INSERT INTO dmarc_reports (org_name, report_id, domain, format, email, generator, begin_at, end_at, policy, errors, imported_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (org_name, report_id) DO NOTHING RETURNING id`,
        [
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
        ],
      );
      const id = inserted.rows[0]?.id;
      if (id === undefined) {
        await client.query('COMMIT');
        return 'duplicate';
      }
      for (let at = 0; at < report.records.length; at += BATCH) {
        const batch = report.records.slice(at, at + BATCH);
        const values = batch.map((_, i) => `(${Array.from({ length: RECORD_COLUMNS }, (_, j) => `$${i * RECORD_COLUMNS + j + 1}`).join(', ')})`);
        await client.query(
          `INSERT INTO dmarc_records (report, source_ip, count, disposition, dkim_aligned, spf_aligned, header_from, envelope_from, dkim, spf, reasons)
           VALUES ${values.join(', ')}`,
          batch.flatMap((r) => [
            id,
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
          ]),
        );
      }
      await client.query('COMMIT');
      return 'imported';
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  async prune(nowMs: number, keepDays: number): Promise<number> {
    // The records go with their report (ON DELETE CASCADE).
    const { rowCount } = await this.#pool.query('DELETE FROM dmarc_reports WHERE end_at < $1', [pruneBefore(nowMs, keepDays)]);
    return rowCount ?? 0;
  }

  async records(since: number, domain?: string): Promise<StoredRecord[]> {
    const { rows } = await this.#pool.query<Omit<RecordRow, 'begin' | 'end' | 'count'> & { begin: string; end: string; count: string }>(RECORDS, [
      since,
      domain ?? null,
    ]);
    return rows.map((r) => parseRecord({ ...r, begin: Number(r.begin), end: Number(r.end), count: Number(r.count) }));
  }

  async reportCounts(since: number, domain?: string): Promise<Map<string, number>> {
    const { rows } = await this.#pool.query<{ domain: string; n: string }>(
      `SELECT domain, COUNT(*) AS n FROM dmarc_reports WHERE end_at >= $1 AND ($2::text IS NULL OR domain = $2) GROUP BY domain`,
      [since, domain ?? null],
    );
    return new Map(rows.map((r) => [r.domain, Number(r.n)]));
  }
}
