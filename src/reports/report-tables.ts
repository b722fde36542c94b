// The aggregate reports' tables in the key store's database (keys.db). They
// are kept apart from the keys' versioned migrations: created if missing, and
// versioned by a row of their own in report_schema, so the keys' user_version
// stays the keys' alone.
//
//   1  dmarc_reports: one row per report, unique by (org_name, report_id)
//      (RFC 7489 §7.2.1.1: the pair names a report); dmarc_records: its
//      records, the auth results as JSON arrays.
import type { Db } from '../keys/database.ts';

export const REPORT_TABLES_VERSION = 1;

const V1 = `
CREATE TABLE IF NOT EXISTS report_schema (
  name    TEXT PRIMARY KEY,
  version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dmarc_reports (
  id           INTEGER PRIMARY KEY,
  org_name     TEXT NOT NULL,
  report_id    TEXT NOT NULL,
  domain       TEXT NOT NULL,
  format       TEXT NOT NULL,
  email        TEXT NOT NULL,
  generator    TEXT,
  begin_at     INTEGER NOT NULL,
  end_at       INTEGER NOT NULL,
  policy       TEXT NOT NULL,
  errors       TEXT NOT NULL,
  imported_at  INTEGER NOT NULL,
  UNIQUE (org_name, report_id)
);
CREATE INDEX IF NOT EXISTS dmarc_reports_domain_end ON dmarc_reports (domain, end_at);
CREATE TABLE IF NOT EXISTS dmarc_records (
  id             INTEGER PRIMARY KEY,
  report         INTEGER NOT NULL REFERENCES dmarc_reports (id) ON DELETE CASCADE,
  source_ip      TEXT NOT NULL,
  count          INTEGER NOT NULL,
  disposition    TEXT NOT NULL,
  dkim_aligned   TEXT NOT NULL,
  spf_aligned    TEXT NOT NULL,
  header_from    TEXT NOT NULL,
  envelope_from  TEXT,
  dkim           TEXT NOT NULL,
  spf            TEXT NOT NULL,
  reasons        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dmarc_records_report ON dmarc_records (report);
INSERT INTO report_schema (name, version) VALUES ('dmarc', 1) ON CONFLICT (name) DO NOTHING;
`;

/** Creates the tables when missing; one IMMEDIATE transaction, so two processes starting at once do it once. */
export function ensureReportTables(db: Db): void {
  db.transaction(() => db.exec(V1)).immediate();
}
