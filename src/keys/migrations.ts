// Versioned schema of keys.db, counted in SQLite's PRAGMA user_version.
//
//   0  no schema yet, or the keys table of the first releases (they never set user_version)
//   1  that keys table, now numbered
//   2  the `removed` state and removed_at; a selector is unique among keys not
//      removed (so delegated selectors can be reused once their key is gone);
//      events (the audit trail of every transition), dns_observations (what
//      each DNS server served, for DNS-gated activation), leases (one
//      scheduler acts at a time) and notifications (each notice sent once)
//   3  dns_unpublished: keys whose record the configured DNS publisher has not
//      yet made DNS serve as their state says (the scheduler retries them)
//   4  keys.client: the chain a key is in, a client of the relay
//      (clients[].name) or NULL for the domain's own keys; code that knows
//      only version 3 would sign a client's mail with any chain's key, so a
//      store with client keys needs this version or later
//
// `migrate(db)` brings a database to KEY_STORE_SCHEMA_VERSION, each step in its own
// IMMEDIATE transaction that first reads the version again, so two processes
// starting at once migrate it once, and a crash leaves it at a whole version.
// It is meant to run right after opening (in openDatabase, after the WAL
// pragmas, instead of exec(SCHEMA)); a store at version 2 still works with
// code that knows only version 1, which never writes the new state or tables.
//
// What readers of version 2 must know:
// - `SELECT … FROM keys WHERE domain = ? AND selector = ?` may find a removed
//   key beside the live one that reuses its selector: add `AND state <> 'removed'`.
// - events.from_state is NULL for a key's creation.
// - dns_observations has one row per (key_id, server), see src/rotation/observation.ts.
// - leases: a holder takes or renews one with
//     INSERT INTO leases (name, holder, expires_at) VALUES (:name, :holder, :until)
//     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
//     WHERE leases.holder = excluded.holder OR leases.expires_at < :now
//   and holds it when one row changed.
import type Database from 'better-sqlite3';
import { UserError } from '../common/errors.ts';
import { migrateSqlite, sqliteVersion, type Migrated, type Schema, type SqliteStep } from '../common/schema-migrations.ts';

type Db = Database.Database;

export const KEY_STORE_SCHEMA_VERSION = 4;

/** The keys table as the first releases created it; version 1 is exactly this. */
const V1 = `
CREATE TABLE IF NOT EXISTS keys (
  id           INTEGER PRIMARY KEY,
  domain       TEXT NOT NULL,
  selector     TEXT NOT NULL,
  algorithm    TEXT NOT NULL CHECK (algorithm IN ('rsa', 'ed25519')),
  bits         INTEGER NOT NULL,
  state        TEXT NOT NULL CHECK (state IN ('pending', 'active', 'retiring', 'revoked')),
  public_data  TEXT NOT NULL,
  fingerprint  TEXT NOT NULL,
  file         TEXT NOT NULL,
  created_at   TEXT NOT NULL,
  activated_at TEXT,
  retired_at   TEXT,
  revoked_at   TEXT,
  UNIQUE (domain, selector)
);
CREATE INDEX IF NOT EXISTS keys_by_domain ON keys (domain, state);
`;

/**
 * A CHECK constraint cannot be altered in SQLite: the keys table is rebuilt
 * as https://www.sqlite.org/lang_altertable.html#otheralter describes (new
 * table, copy, drop, rename, indexes), inside the migration's transaction.
 * Ids are kept: events refer to them.
 */
const V2 = `
CREATE TABLE keys_v2 (
  id           INTEGER PRIMARY KEY,
  domain       TEXT NOT NULL,
  selector     TEXT NOT NULL,
  algorithm    TEXT NOT NULL CHECK (algorithm IN ('rsa', 'ed25519')),
  bits         INTEGER NOT NULL,
  state        TEXT NOT NULL CHECK (state IN ('pending', 'active', 'retiring', 'revoked', 'removed')),
  public_data  TEXT NOT NULL,
  fingerprint  TEXT NOT NULL,
  file         TEXT NOT NULL,
  created_at   TEXT NOT NULL,
  activated_at TEXT,
  retired_at   TEXT,
  revoked_at   TEXT,
  removed_at   TEXT
);
INSERT INTO keys_v2 (id, domain, selector, algorithm, bits, state, public_data, fingerprint, file,
                     created_at, activated_at, retired_at, revoked_at)
  SELECT id, domain, selector, algorithm, bits, state, public_data, fingerprint, file,
         created_at, activated_at, retired_at, revoked_at FROM keys;
DROP TABLE keys;
ALTER TABLE keys_v2 RENAME TO keys;
CREATE UNIQUE INDEX keys_live_selector ON keys (domain, selector) WHERE state <> 'removed';
CREATE INDEX keys_by_domain ON keys (domain, state);

CREATE TABLE events (
  id         INTEGER PRIMARY KEY,
  key_id     INTEGER NOT NULL REFERENCES keys (id),
  domain     TEXT NOT NULL,
  selector   TEXT NOT NULL,
  from_state TEXT CHECK (from_state IN ('pending', 'active', 'retiring', 'revoked', 'removed')),
  to_state   TEXT NOT NULL CHECK (to_state IN ('pending', 'active', 'retiring', 'revoked', 'removed')),
  at         TEXT NOT NULL,
  by         TEXT NOT NULL CHECK (by IN ('cli', 'scheduler', 'dns')),
  why        TEXT NOT NULL
);
CREATE INDEX events_by_key ON events (key_id, at);
CREATE INDEX events_by_domain ON events (domain, at);

CREATE TABLE dns_observations (
  key_id              INTEGER NOT NULL REFERENCES keys (id),
  server              TEXT NOT NULL,
  first_seen_matching TEXT,
  last_checked        TEXT NOT NULL,
  last_state          TEXT NOT NULL,
  detail              TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (key_id, server)
);

CREATE TABLE leases (
  name       TEXT PRIMARY KEY,
  holder     TEXT NOT NULL,
  expires_at TEXT NOT NULL
);

CREATE TABLE notifications (
  key     TEXT PRIMARY KEY,
  key_id  INTEGER REFERENCES keys (id),
  sent_at TEXT NOT NULL
);
`;

/** A row per key whose DNS change is still to be applied, written before each try and deleted once it succeeded. */
const V3 = `
CREATE TABLE dns_unpublished (
  key_id INTEGER PRIMARY KEY REFERENCES keys (id),
  since  TEXT NOT NULL,
  reason TEXT NOT NULL
);
`;

/** A key's chain: NULL for the domain's own keys (every key made before chains existed). */
const V4 = `
ALTER TABLE keys ADD COLUMN client TEXT;
`;

/** Step n brings a database from version n - 1 to n. */
const STEPS: Record<number, SqliteStep> = {
  1: V1,
  2: (db) => {
    db.exec(V2);
    const broken = db.pragma('foreign_key_check') as unknown[];
    if (broken.length > 0) throw new Error(`keys.db: ${broken.length} rows refer to keys that do not exist after the rebuild`);
  },
  3: V3,
  4: V4,
};

export function schemaVersion(db: Db): number {
  return sqliteVersion(db);
}

/** Brings the database to KEY_STORE_SCHEMA_VERSION; returns the versions before and after. */
export function migrate(db: Db): Migrated {
  return migrateSqlite(db, schemaOf(db));
}

function schemaOf(db: Db): Schema<SqliteStep> {
  return {
    name: 'keys',
    latest: KEY_STORE_SCHEMA_VERSION,
    steps: STEPS,
    tooNew: (version) =>
      new UserError(
        `key store database ${db.name} has schema version ${version}, but this dkim-relay knows versions up to ${KEY_STORE_SCHEMA_VERSION}`,
        'run the newer dkim-relay that last used it, or restore a backup of keys.db made with this version',
      ),
  };
}
