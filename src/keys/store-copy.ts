// `keys migrate`: copies a SQLite key store (keys.dir) with its history into
// a PostgreSQL one, in one transaction. Rows keep their ids (events and
// observations refer to them), so running it again adds nothing; every key is
// then proven by signing a test message and verifying it with its public key.
import { createPublicKey, sign, verify } from 'node:crypto';
import Database from 'better-sqlite3';
import type pg from 'pg';
import { UserError } from '../common/errors.ts';
import { recordName } from '../common/names.ts';
import { publicPem } from './key-material.ts';
import type { KeyStore, StoredKey } from './key-store.ts';
import type { PgKeyStore } from './pg-store.ts';
import { seal } from './sealing.ts';
import type { SqliteKeyStore } from './store.ts';

export const COPIED_TABLES = ['keys', 'events', 'dns_observations', 'notifications', 'dns_unpublished'] as const;
export type CopiedTable = (typeof COPIED_TABLES)[number];
export type TableCounts = Record<CopiedTable, { rows: number; added: number }>;

export interface CopyResult {
  tables: TableCounts;
  /** Keys that signed and verified a test message in the target. */
  verified: number;
}

type Row = Record<string, unknown>;

/** The conflict each table's rows are recognised by when they were copied before. */
const INSERTS: Record<Exclude<CopiedTable, 'keys'>, { columns: string[]; conflict: string }> = {
  events: { columns: ['id', 'key_id', 'domain', 'selector', 'from_state', 'to_state', 'at', 'by', 'why'], conflict: 'id' },
  dns_observations: { columns: ['key_id', 'server', 'first_seen_matching', 'last_checked', 'last_state', 'detail'], conflict: 'key_id, server' },
  notifications: { columns: ['key', 'key_id', 'sent_at'], conflict: 'key' },
  dns_unpublished: { columns: ['key_id', 'since', 'reason'], conflict: 'key_id' },
};

const KEY_COLUMNS = [
  'id',
  'domain',
  'selector',
  'client',
  'algorithm',
  'bits',
  'state',
  'public_data',
  'fingerprint',
  'file',
  'created_at',
  'activated_at',
  'retired_at',
  'revoked_at',
  'removed_at',
];

export async function copySqliteStore(source: SqliteKeyStore, target: PgKeyStore): Promise<CopyResult> {
  const rows = readTables(source.dbFile);
  // Read (and permission-checked) before the transaction: a key file that cannot be used stops the copy before anything is written.
  const pems = new Map<number, string>();
  // A key in a PKCS#11 token stays there: its row (URI and public key) is copied, with no private half.
  for (const key of source.list()) if (key.state !== 'removed' && key.material !== 'pkcs11') pems.set(key.id, source.privatePem(key));
  const tables = await target.transaction(async (client, kek) => {
    const counts = {} as TableCounts;
    counts.keys = { rows: rows.keys.length, added: 0 };
    for (const row of rows.keys) {
      const id = row.id as number;
      const pem = pems.get(id);
      const values = [...KEY_COLUMNS.map((c) => row[c]), pem === undefined ? null : seal(kek, id, pem)];
      const inserted = await client.query(
        `INSERT INTO keys (${KEY_COLUMNS.join(', ')}, material, sealed) VALUES (${KEY_COLUMNS.map((_, i) => `$${i + 1}`).join(', ')},
           CASE WHEN $${KEY_COLUMNS.indexOf('file') + 1} LIKE 'pkcs11:%' THEN 'pkcs11' ELSE 'sealed' END, $${KEY_COLUMNS.length + 1})
         ON CONFLICT (id) DO NOTHING`,
        values,
      );
      if (inserted.rowCount === 1) counts.keys.added++;
      else await requireSameKey(client, row);
    }
    for (const table of COPIED_TABLES) {
      if (table === 'keys') continue;
      const { columns, conflict } = INSERTS[table];
      counts[table] = { rows: rows[table].length, added: 0 };
      const quoted = columns.map((c) => `"${c}"`).join(', ');
      for (const row of rows[table]) {
        const inserted = await client.query(
          `INSERT INTO ${table} (${quoted}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')}) ON CONFLICT (${conflict}) DO NOTHING`,
          columns.map((c) => row[c]),
        );
        counts[table].added += inserted.rowCount ?? 0;
      }
    }
    // New rows made after the copy take ids after the copied ones.
    for (const table of ['keys', 'events']) {
      await client.query(`SELECT setval(pg_get_serial_sequence('${table}', 'id'), GREATEST((SELECT max(id) FROM ${table}), 1))`);
    }
    return counts;
  });
  return { tables, verified: verifyKeys(target) };
}

/** Signs a test message with every key that has its private half here, and verifies it with the published public key (a token key is checked as it signs). */
export function verifyKeys(store: KeyStore): number {
  let verified = 0;
  const message = Buffer.from(`dkim-relay key check ${new Date().toISOString()}`);
  for (const key of store.list()) {
    if (key.state === 'removed' || key.material === 'pkcs11') continue;
    const digest = key.algorithm === 'rsa' ? 'sha256' : null;
    const signature = sign(digest, message, store.privatePem(key));
    if (!verify(digest, message, createPublicKey(publicPem(key.algorithm, key.publicData)), signature)) {
      throw new UserError(
        `the key ${recordName(key.selector, key.domain)} in ${store.location} does not match its public key`,
        'restore the store from backup and run keys migrate again',
      );
    }
    verified++;
  }
  return verified;
}

/** A row already there under a copied key's id must be that key, not another store's. */
async function requireSameKey(client: pg.ClientBase, row: Row): Promise<void> {
  const { rows } = await client.query<Pick<StoredKey, 'domain' | 'selector' | 'fingerprint'>>(`SELECT domain, selector, fingerprint FROM keys WHERE id = $1`, [
    row.id,
  ]);
  const there = rows[0]!;
  if (there.domain !== row.domain || there.selector !== row.selector || there.fingerprint !== row.fingerprint) {
    throw new UserError(
      `the target store already holds another key under id ${String(row.id)} (${recordName(there.selector, there.domain)})`,
      'keys migrate copies into an empty store, or one it filled before from the same keys.dir',
    );
  }
}

function readTables(dbFile: string): Record<CopiedTable, Row[]> {
  const db = new Database(dbFile, { readonly: true, fileMustExist: true, timeout: 5000 });
  try {
    const read = (sql: string) => db.prepare(sql).all() as Row[];
    return {
      keys: read(`SELECT ${KEY_COLUMNS.join(', ')} FROM keys ORDER BY id`),
      events: read(`SELECT ${INSERTS.events.columns.join(', ')} FROM events ORDER BY id`),
      dns_observations: read(`SELECT ${INSERTS.dns_observations.columns.join(', ')} FROM dns_observations`),
      notifications: read(`SELECT ${INSERTS.notifications.columns.join(', ')} FROM notifications`),
      dns_unpublished: read(`SELECT ${INSERTS.dns_unpublished.columns.join(', ')} FROM dns_unpublished`),
    };
  } finally {
    db.close();
  }
}
