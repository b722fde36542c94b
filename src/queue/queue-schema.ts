// Versioned schema of queue.db, counted in SQLite's PRAGMA user_version.
//
//   1  messages (one row per accepted message, its file is msg/<id>.eml),
//      message_signatures (the d=/s= of every signature it carries),
//      recipients (one row per envelope recipient, with its delivery state)
//   2  messages.sender_domains: the domains the submitting client was held
//      to (clients[].domains) when the message came in; a notice goes only
//      to an envelope sender in them. NULL: any sender (the rows of 1 too).
//   3  messages.octets: the message itself when it is small (up to
//      INLINE_MAX_SIZE), committed with its rows in one fsync of the WAL;
//      NULL: in msg/<id>.eml (larger messages, and the rows of 1 and 2).
//
// Times are milliseconds since the epoch (INTEGER), so "due" is one
// comparison. A recipient in `delivering` has next_attempt_at set to the end
// of its lease: should the process that claimed it die, it is simply due again.
import type Database from 'better-sqlite3';
import { UserError } from '../common/errors.ts';
import { migrateSqlite } from '../common/schema-migrations.ts';

export const QUEUE_SCHEMA_VERSION = 3;

const V1 = `
CREATE TABLE messages (
  id          TEXT PRIMARY KEY,
  received_at INTEGER NOT NULL,
  sender      TEXT NOT NULL,              -- '' for the null reverse-path <>
  size        INTEGER NOT NULL,
  client      TEXT NOT NULL,              -- who handed it to us: address, and user when authenticated
  ret         TEXT CHECK (ret IN ('FULL', 'HDRS')),  -- RFC 3461 §4.3
  envid       TEXT,                       -- RFC 3461 §4.4
  hold        TEXT                        -- NULL: not held; else why it is held
) STRICT;

CREATE TABLE message_signatures (
  message_id TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
  domain     TEXT NOT NULL,
  selector   TEXT NOT NULL,
  PRIMARY KEY (message_id, domain, selector)
) STRICT, WITHOUT ROWID;
CREATE INDEX message_signatures_by_key ON message_signatures (domain, selector);

CREATE TABLE recipients (
  message_id      TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
  seq             INTEGER NOT NULL,       -- order of RCPT TO, from 0
  address         TEXT NOT NULL,
  orcpt           TEXT,                   -- RFC 3461 §4.2, as given: "rfc822;a@example.com"
  notify          TEXT,                   -- RFC 3461 §4.1: NEVER, or SUCCESS,FAILURE,DELAY; NULL when not given
  state           TEXT NOT NULL CHECK (state IN ('queued', 'delivering', 'delivered', 'deferred', 'bounced')),
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  claim           TEXT,                   -- token of the attempt that holds it while delivering
  last_code       INTEGER,
  last_enhanced   TEXT,
  last_text       TEXT,
  delay_warned_at INTEGER,
  updated_at      INTEGER NOT NULL,
  PRIMARY KEY (message_id, seq)
) STRICT;
CREATE INDEX recipients_due ON recipients (next_attempt_at) WHERE state IN ('queued', 'deferred', 'delivering');
CREATE INDEX recipients_by_state ON recipients (message_id, state);
`;

// Space-separated domain names, lower case.
const V2 = `ALTER TABLE messages ADD COLUMN sender_domains TEXT;`;

// Last in the row, so reading the other columns never loads its overflow pages.
const V3 = `ALTER TABLE messages ADD COLUMN octets BLOB;`;

const STEPS: Record<number, string> = { 1: V1, 2: V2, 3: V3 };

/** Brings the database to QUEUE_SCHEMA_VERSION, each step in its own IMMEDIATE transaction. */
export function migrateQueue(db: Database.Database, file: string): void {
  migrateSqlite(db, {
    name: 'queue',
    latest: QUEUE_SCHEMA_VERSION,
    steps: STEPS,
    tooNew: (version) =>
      new UserError(
        `${file} has queue schema version ${version}, newer than this dkim-relay knows (${QUEUE_SCHEMA_VERSION})`,
        'run the release that wrote it until its queue is empty',
      ),
  });
}
