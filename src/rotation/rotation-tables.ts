// The rotation scheduler's tables in keys.db, beside a SQLite key store (see
// rotation-state.ts). One relay owns keys.dir, so a lease held is held at
// epoch 0 and the fences are not checked.
// Its own connection to the database: none of this shares a transaction
// with a key's change of state.
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { explainDatabaseError, openDatabase, type Db } from '../keys/database.ts';
import type { DnsObservation, ObservedState } from './observation.ts';
import type { LeaseRow, RotationState, UnpublishedRow } from './rotation-state.ts';

const OBSERVATIONS = `SELECT key_id AS keyId, server, first_seen_matching AS firstSeenMatching, last_checked AS lastChecked, last_state AS lastState, detail
                      FROM dns_observations ORDER BY key_id, server`;

export class SqliteRotationTables implements RotationState {
  private readonly db: Db;
  private readonly file: string;

  constructor(keysDir: string, timeoutMs = 5000) {
    this.file = join(keysDir, 'keys.db');
    this.db = openDatabase(this.file, timeoutMs);
  }

  close(): void {
    this.db.close();
  }

  /** Another holder's lease is taken over only once it expired. */
  takeLease(name: string, holder: string, now: Date, until: Date): number | null {
    return this.run(() => {
      const { changes } = this.db
        .prepare(
          `INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
                  ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                  WHERE leases.holder = excluded.holder OR leases.expires_at < ?`,
        )
        .run(name, holder, until.toISOString(), now.toISOString());
      return changes === 1 ? 0 : null;
    });
  }

  renewLease(name: string, holder: string, _epoch: number, until: Date): boolean {
    return this.run(
      () => this.db.prepare(`UPDATE leases SET expires_at = ? WHERE name = ? AND holder = ?`).run(until.toISOString(), name, holder).changes === 1,
    );
  }

  releaseLease(name: string, holder: string): void {
    this.run(() => this.db.prepare(`DELETE FROM leases WHERE name = ? AND holder = ?`).run(name, holder));
  }

  leaseHolder(name: string): LeaseRow | undefined {
    return this.run(() => this.db.prepare(`SELECT holder, expires_at AS expiresAt, 0 AS epoch FROM leases WHERE name = ?`).get(name)) as LeaseRow | undefined;
  }

  observations(): DnsObservation[] {
    return this.run(() => this.db.prepare(OBSERVATIONS).all()) as DnsObservation[];
  }

  saveObservations(rows: readonly DnsObservation[]): void {
    const insert = this.db.prepare(
      `INSERT OR REPLACE INTO dns_observations (key_id, server, first_seen_matching, last_checked, last_state, detail) VALUES (?, ?, ?, ?, ?, ?)`,
    );
    this.run(() =>
      this.db
        .transaction(() => {
          for (const o of rows) insert.run(o.keyId, o.server, o.firstSeenMatching, o.lastChecked, o.lastState satisfies ObservedState, o.detail);
        })
        .immediate(),
    );
  }

  notified(): Set<string> {
    return new Set(this.run(() => this.db.prepare(`SELECT key FROM notifications`).pluck().all()) as string[]);
  }

  recordNotification(notice: string, keyId: number, at: Date): boolean {
    return this.run(
      () => this.db.prepare(`INSERT OR IGNORE INTO notifications (key, key_id, sent_at) VALUES (?, ?, ?)`).run(notice, keyId, at.toISOString()).changes === 1,
    );
  }

  forgetNotifications(notices: readonly string[]): void {
    const drop = this.db.prepare(`DELETE FROM notifications WHERE key = ?`);
    this.run(() =>
      this.db
        .transaction(() => {
          for (const n of notices) drop.run(n);
        })
        .immediate(),
    );
  }

  unpublished(): UnpublishedRow[] {
    return this.run(() => this.db.prepare(`SELECT key_id AS keyId, since, reason FROM dns_unpublished ORDER BY since, key_id`).all()) as UnpublishedRow[];
  }

  markUnpublished(keyId: number, at: Date, reason: string): void {
    this.run(() =>
      this.db
        .prepare(`INSERT INTO dns_unpublished (key_id, since, reason) VALUES (?, ?, ?) ON CONFLICT (key_id) DO UPDATE SET reason = excluded.reason`)
        .run(keyId, at.toISOString(), reason),
    );
  }

  clearUnpublished(keyId: number): void {
    this.run(() => this.db.prepare(`DELETE FROM dns_unpublished WHERE key_id = ?`).run(keyId));
  }

  private run<T>(work: () => T): T {
    try {
      return work();
    } catch (err) {
      throw explainDatabaseError(err, this.file);
    }
  }
}

/** The dns_observations rows for `status` and the status page, read through a read-only connection of its own; none while the store predates them. */
export function readObservations(dbFile: string): DnsObservation[] {
  // A relay on a shared PostgreSQL store that never ran `serve` has no local tables yet.
  if (!existsSync(dbFile)) return [];
  let db: Database.Database | undefined;
  try {
    db = new Database(dbFile, { readonly: true, fileMustExist: true, timeout: 5000 });
    if (!db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'dns_observations'`).get()) return [];
    return db.prepare(OBSERVATIONS).all() as DnsObservation[];
  } catch (err) {
    throw explainDatabaseError(err, dbFile);
  } finally {
    db?.close();
  }
}
