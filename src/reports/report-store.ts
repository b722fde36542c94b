// Stored aggregate reports: each once by (org_name, report_id), kept for
// reports.keepDays after the end of the period it covers. They live in the key
// store's database, whichever engine keeps it: keys.db beside a SQLite store
// (sqlite-report-store.ts), the fleet's PostgreSQL beside a shared one
// (pg-report-store.ts), so the relays of a fleet see, and store once, the
// same reports. Importing, the summary, `status` and the metrics use the
// ReportStore interface only.
import type { Awaitable } from '../keys/key-store.ts';
import type { AggregateReport, DkimResult, SpfResult } from './report-model.ts';

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

export interface ReportStore {
  /** Stores a report unless one with its org_name and report_id is stored: then nothing changes. */
  add(report: AggregateReport, nowMs: number): Awaitable<'imported' | 'duplicate'>;
  /** Removes the reports whose period ended more than keepDays ago; returns how many. */
  prune(nowMs: number, keepDays: number): Awaitable<number>;
  /** Every record of reports whose period ended at or after `since` (seconds), optionally of one domain. */
  records(since: number, domain?: string): Awaitable<StoredRecord[]>;
  /** How many reports are stored, per domain: for the summary's header. */
  reportCounts(since: number, domain?: string): Awaitable<Map<string, number>>;
  close(): Awaitable<void>;
}

/** The removal cut-off of prune, in seconds. */
export const pruneBefore = (nowMs: number, keepDays: number): number => Math.floor(nowMs / 1000) - keepDays * DAY_SECONDS;

/** A record row with its auth results as stored (JSON text). */
export type RecordRow = Omit<StoredRecord, 'dkim' | 'spf'> & { dkim: string; spf: string };

export const parseRecord = (r: RecordRow): StoredRecord => ({ ...r, dkim: JSON.parse(r.dkim) as DkimResult[], spf: JSON.parse(r.spf) as SpfResult[] });
