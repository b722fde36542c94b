// Schema migrations of keys.db, on real SQLite files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { fingerprint, generateKey } from '../../src/keys/key-material.ts';
import { SqliteKeyStore } from '../../src/keys/store.ts';
import { KEY_STORE_SCHEMA_VERSION, migrate, schemaVersion } from '../../src/keys/migrations.ts';
import { tempDir } from '../helpers/tmp.ts';
import { expectUserError } from './support.ts';

/** The schema exactly as the first releases' database.ts wrote it, without a user_version (0). */
const V0_SCHEMA = `
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

const ROWS = [
  [
    3,
    'example.com',
    's202601a',
    'rsa',
    2048,
    'revoked',
    'MIIBrsa1',
    'SHA256:a',
    's202601a._domainkey.example.com.pem',
    '2026-01-03T10:00:00.000Z',
    '2026-01-05T10:00:00.000Z',
    '2026-03-01T10:00:00.000Z',
    '2026-03-08T10:00:00.000Z',
  ],
  [
    7,
    'example.com',
    's202603a',
    'rsa',
    2048,
    'active',
    'MIIBrsa2',
    'SHA256:b',
    's202603a._domainkey.example.com.pem',
    '2026-02-27T10:00:00.000Z',
    '2026-03-01T10:00:00.000Z',
    null,
    null,
  ],
  [
    8,
    'example.com',
    's202603b',
    'ed25519',
    256,
    'pending',
    'ed25519pub',
    'SHA256:c',
    's202603b._domainkey.example.com.pem',
    '2026-03-02T10:00:00.000Z',
    null,
    null,
    null,
  ],
  [
    9,
    'example.org',
    's202603a',
    'rsa',
    1024,
    'retiring',
    'MIGfrsa3',
    'SHA256:d',
    's202603a._domainkey.example.org.pem',
    '2026-03-02T11:00:00.000Z',
    '2026-03-02T11:00:00.000Z',
    '2026-03-09T11:00:00.000Z',
    null,
  ],
] as const;

const COLUMNS = 'id, domain, selector, algorithm, bits, state, public_data, fingerprint, file, created_at, activated_at, retired_at, revoked_at';

function v0Store(): Database.Database {
  const db = new Database(join(tempDir(), 'keys.db'));
  db.pragma('journal_mode = WAL');
  db.exec(V0_SCHEMA);
  const insert = db.prepare(
    `INSERT INTO keys (${COLUMNS}) VALUES (${COLUMNS.split(',')
      .map(() => '?')
      .join(', ')})`,
  );
  for (const row of ROWS) insert.run(...row);
  return db;
}

function tables(db: Database.Database): string[] {
  return (db.prepare(`SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name`).all() as { name: string }[]).map((r) => r.name);
}

test('a store made by the first releases (user_version 0) is migrated to the latest version with every key kept', () => {
  const db = v0Store();
  assert.equal(schemaVersion(db), 0);

  assert.deepEqual(migrate(db), { from: 0, to: 4 });
  assert.equal(KEY_STORE_SCHEMA_VERSION, 4);
  assert.equal(schemaVersion(db), 4);

  const rows = db.prepare(`SELECT ${COLUMNS}, removed_at FROM keys ORDER BY id`).raw().all();
  assert.deepEqual(
    rows,
    ROWS.map((r) => [...r, null]),
  );
  assert.deepEqual(tables(db), ['dns_observations', 'dns_unpublished', 'events', 'keys', 'leases', 'notifications']);
  assert.deepEqual(db.pragma('integrity_check', { simple: true }), 'ok');
  db.close();
});

test('version 2 accepts the removed state, and a removed key frees its selector for a new key', () => {
  const db = v0Store();
  migrate(db);
  db.prepare(`UPDATE keys SET state = 'removed', removed_at = ? WHERE id = 3`).run('2026-04-07T10:00:00.000Z');
  db.prepare(
    `INSERT INTO keys (${COLUMNS}) VALUES (20, 'example.com', 's202601a', 'rsa', 2048, 'pending', 'MIIBnew', 'SHA256:e', 'f.pem', '2026-04-08T00:00:00.000Z', null, null, null)`,
  ).run();
  // Two live keys with one selector stay impossible.
  assert.throws(
    () =>
      db
        .prepare(
          `INSERT INTO keys (${COLUMNS}) VALUES (21, 'example.com', 's202601a', 'rsa', 2048, 'pending', 'x', 'y', 'g.pem', '2026-04-08T00:00:00.000Z', null, null, null)`,
        )
        .run(),
    /UNIQUE constraint failed/,
  );
  assert.throws(() => db.prepare(`UPDATE keys SET state = 'gone' WHERE id = 7`).run(), /CHECK constraint failed/);

  db.prepare(
    `INSERT INTO events (key_id, domain, selector, from_state, to_state, at, by, why) VALUES (3, 'example.com', 's202601a', 'revoked', 'removed', '2026-04-07T10:00:00.000Z', 'scheduler', 'revoked 30 days ago')`,
  ).run();
  db.prepare(
    `INSERT INTO events (key_id, domain, selector, from_state, to_state, at, by, why) VALUES (20, 'example.com', 's202601a', NULL, 'pending', '2026-04-08T00:00:00.000Z', 'scheduler', 'rotation')`,
  ).run();
  assert.throws(
    () =>
      db
        .prepare(
          `INSERT INTO events (key_id, domain, selector, from_state, to_state, at, by, why) VALUES (3, 'example.com', 's', 'revoked', 'removed', 'now', 'cron', 'x')`,
        )
        .run(),
    /CHECK constraint failed/,
  );
  db.prepare(
    `INSERT INTO dns_observations (key_id, server, first_seen_matching, last_checked, last_state) VALUES (20, '192.0.2.53', NULL, '2026-04-08T00:15:00.000Z', 'missing')`,
  ).run();
  db.prepare(`INSERT INTO leases (name, holder, expires_at) VALUES ('rotation', 'host:123', '2026-04-08T00:20:00.000Z')`).run();
  assert.throws(() => db.prepare(`INSERT INTO leases (name, holder, expires_at) VALUES ('rotation', 'host:456', 'x')`).run(), /UNIQUE constraint failed/);
  db.close();
});

test('migrate is idempotent: a second run changes nothing', () => {
  const db = v0Store();
  migrate(db);
  db.prepare(
    `INSERT INTO events (key_id, domain, selector, from_state, to_state, at, by, why) VALUES (7, 'example.com', 's202603a', 'pending', 'active', '2026-03-01T10:00:00.000Z', 'cli', 'keys activate')`,
  ).run();
  const before = db.prepare(`SELECT sql FROM sqlite_schema ORDER BY name`).raw().all();
  const keys = db.prepare(`SELECT * FROM keys ORDER BY id`).raw().all();

  assert.deepEqual(migrate(db), { from: 4, to: 4 });
  assert.deepEqual(db.prepare(`SELECT sql FROM sqlite_schema ORDER BY name`).raw().all(), before);
  assert.deepEqual(db.prepare(`SELECT * FROM keys ORDER BY id`).raw().all(), keys);
  assert.equal(db.prepare(`SELECT count(*) FROM events`).pluck().get(), 1);
  db.close();
});

test('an empty database is created at the latest version', () => {
  const db = new Database(join(tempDir(), 'keys.db'));
  assert.deepEqual(migrate(db), { from: 0, to: 4 });
  assert.deepEqual(tables(db), ['dns_observations', 'dns_unpublished', 'events', 'keys', 'leases', 'notifications']);
  db.close();
});

test('a store migrated by one process is not migrated again by another that opened it at version 0', () => {
  const file = join(tempDir(), 'keys.db');
  const first = new Database(file);
  first.exec(V0_SCHEMA);
  const second = new Database(file);
  assert.equal(schemaVersion(second), 0);
  migrate(first);
  assert.deepEqual(migrate(second), { from: 4, to: 4 });
  assert.equal(schemaVersion(second), 4);
  first.close();
  second.close();
});

test('a store at the latest version is left untouched, file and all', () => {
  const file = join(tempDir(), 'keys.db');
  const db = new Database(file);
  migrate(db);
  db.prepare(
    `INSERT INTO keys (${COLUMNS}, removed_at) VALUES (1, 'example.com', 'sel1', 'rsa', 2048, 'removed', 'p', 'f', 'sel1.pem', 'c', 'a', 'r', 'v', 'x')`,
  ).run();
  db.close();
  const bytes = readFileSync(file);
  const reopened = new Database(file);
  assert.deepEqual(migrate(reopened), { from: 4, to: 4 });
  assert.equal(reopened.prepare('SELECT total_changes()').pluck().get(), 0);
  reopened.close();
  assert.ok(readFileSync(file).equals(bytes), 'the database file changed');
  const again = new Database(file);
  assert.equal(again.prepare(`SELECT state FROM keys WHERE id = 1`).pluck().get(), 'removed');
  again.close();
});

test('a store newer than this dkim-relay knows is refused with a clear message, and left as it is', () => {
  const db = v0Store();
  db.pragma('user_version = 5');
  expectUserError(() => migrate(db), /schema version 5, but this dkim-relay knows versions up to 4/, /newer dkim-relay|backup/);
  assert.equal(schemaVersion(db), 5);
  assert.equal(db.prepare(`SELECT count(*) FROM keys`).pluck().get(), ROWS.length);
  db.close();
});

test('a store made by the first releases (version 0, real key files) opens at the latest version and its keys go through the whole lifecycle, audited', () => {
  const dir = join(tempDir(), 'keys');
  mkdirSync(dir, { mode: 0o700 });
  const db = new Database(join(dir, 'keys.db'));
  db.pragma('journal_mode = WAL');
  db.exec(V0_SCHEMA);
  const insert = db.prepare(
    `INSERT INTO keys (${COLUMNS}) VALUES (${COLUMNS.split(',')
      .map(() => '?')
      .join(', ')})`,
  );
  const material = generateKey('ed25519');
  const file = 's202601a._domainkey.example.com.pem';
  writeFileSync(join(dir, file), material.privatePem, { mode: 0o600 });
  insert.run(
    1,
    'example.com',
    's202601a',
    'ed25519',
    256,
    'active',
    material.publicData,
    fingerprint(material.publicData),
    file,
    '2026-01-03T10:00:00.000Z',
    '2026-01-03T10:00:00.000Z',
    null,
    null,
  );
  db.close();

  const store = SqliteKeyStore.open(dir);
  try {
    const check = new Database(join(dir, 'keys.db'), { readonly: true });
    assert.equal(schemaVersion(check), KEY_STORE_SCHEMA_VERSION);
    check.close();
    assert.equal(store.activeKeys('example.com')[0]?.selector, 's202601a', 'the old active key still signs');

    const next = store.generate({ domain: 'example.com', algorithm: 'ed25519' });
    store.activate('example.com', next.selector);
    store.revoke('example.com', 's202601a');
    const removed = store.remove('example.com', 's202601a');
    assert.equal(removed.state, 'removed');
    assert.ok(removed.removedAt);
    assert.ok(!existsSync(join(dir, file)), 'the removed key file is deleted');
    assert.deepEqual(
      store.list('example.com').map((k) => [k.selector, k.state]),
      [
        ['s202601a', 'removed'],
        [next.selector, 'active'],
      ],
    );
    assert.deepEqual(
      store.history('example.com').map((e) => [e.selector, e.from, e.to, e.by, e.why]),
      [
        [next.selector, null, 'pending', 'cli', 'created'],
        ['s202601a', 'active', 'retiring', 'cli', `replaced by ${next.selector}`],
        [next.selector, 'pending', 'active', 'cli', 'keys activate'],
        ['s202601a', 'retiring', 'revoked', 'cli', 'keys revoke'],
        ['s202601a', 'revoked', 'removed', 'cli', 'keys remove'],
      ],
    );
    // The selector of a removed key is free again, when named on purpose (delegated selectors).
    const reused = store.generate({ domain: 'example.com', selector: 's202601a', algorithm: 'ed25519' });
    assert.equal(store.get('example.com', 's202601a').id, reused.id);
    assert.equal(store.list('example.com').filter((k) => k.selector === 's202601a').length, 2);
  } finally {
    store.close();
  }
});
