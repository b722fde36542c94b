// The rotation scheduler's tables in the fleet's PostgreSQL store (see
// rotation-state.ts). The lease row carries the fencing epoch: it grows each
// time another relay takes the lease over, and every write below runs in a
// transaction that first checks the writer still holds that epoch
// (checkFence), so a leader that was paused past its lease cannot write
// after its successor.
import type pg from 'pg';
import type { Fence } from '../keys/fence.ts';
import { checkFence } from '../keys/pg-store.ts';
import type { DnsObservation } from './observation.ts';
import type { LeaseRow, RotationState, UnpublishedRow } from './rotation-state.ts';

const OBSERVATIONS = `SELECT key_id AS "keyId", server, first_seen_matching AS "firstSeenMatching", last_checked AS "lastChecked", last_state AS "lastState", detail
                      FROM dns_observations ORDER BY key_id, server`;

export class PgRotationTables implements RotationState {
  private readonly pool: pg.Pool;

  constructor(pool: pg.Pool) {
    this.pool = pool;
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  async takeLease(name: string, holder: string, now: Date, until: Date): Promise<number | null> {
    const { rows } = await this.pool.query<{ epoch: string }>(
      `INSERT INTO leases (name, holder, expires_at, epoch) VALUES ($1, $2, $3, 1)
       ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at,
         epoch = CASE WHEN leases.holder = excluded.holder THEN leases.epoch ELSE leases.epoch + 1 END
       WHERE leases.holder = excluded.holder OR leases.expires_at < $4
       RETURNING epoch`,
      [name, holder, until.toISOString(), now.toISOString()],
    );
    return rows[0] === undefined ? null : Number(rows[0].epoch);
  }

  async renewLease(name: string, holder: string, epoch: number, until: Date): Promise<boolean> {
    const { rowCount } = await this.pool.query(`UPDATE leases SET expires_at = $1 WHERE name = $2 AND holder = $3 AND epoch = $4`, [
      until.toISOString(),
      name,
      holder,
      epoch,
    ]);
    return rowCount === 1;
  }

  /** Expires the lease rather than deleting it: the epoch must never go back. */
  async releaseLease(name: string, holder: string): Promise<void> {
    await this.pool.query(`UPDATE leases SET expires_at = '' WHERE name = $1 AND holder = $2`, [name, holder]);
  }

  async leaseHolder(name: string): Promise<LeaseRow | undefined> {
    const { rows } = await this.pool.query<{ holder: string; expiresAt: string; epoch: string }>(
      `SELECT holder, expires_at AS "expiresAt", epoch FROM leases WHERE name = $1`,
      [name],
    );
    return rows[0] && { ...rows[0], epoch: Number(rows[0].epoch) };
  }

  async observations(): Promise<DnsObservation[]> {
    return (await this.pool.query<DnsObservation>(OBSERVATIONS)).rows;
  }

  async saveObservations(rows: readonly DnsObservation[], fence: Fence): Promise<void> {
    await this.fenced(fence, async (client) => {
      for (const o of rows) {
        await client.query(
          `INSERT INTO dns_observations (key_id, server, first_seen_matching, last_checked, last_state, detail) VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (key_id, server) DO UPDATE SET first_seen_matching = excluded.first_seen_matching, last_checked = excluded.last_checked,
             last_state = excluded.last_state, detail = excluded.detail`,
          [o.keyId, o.server, o.firstSeenMatching, o.lastChecked, o.lastState, o.detail],
        );
      }
    });
  }

  async notified(): Promise<Set<string>> {
    return new Set((await this.pool.query<{ key: string }>(`SELECT key FROM notifications`)).rows.map((r) => r.key));
  }

  async recordNotification(notice: string, keyId: number, at: Date, fence: Fence): Promise<boolean> {
    return this.fenced(fence, async (client) => {
      const { rowCount } = await client.query(`INSERT INTO notifications (key, key_id, sent_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, [
        notice,
        keyId,
        at.toISOString(),
      ]);
      return rowCount === 1;
    });
  }

  async forgetNotifications(notices: readonly string[], fence: Fence): Promise<void> {
    if (notices.length === 0) return;
    await this.fenced(fence, (client) => client.query(`DELETE FROM notifications WHERE key = ANY($1)`, [notices]));
  }

  async unpublished(): Promise<UnpublishedRow[]> {
    return (await this.pool.query<UnpublishedRow>(`SELECT key_id AS "keyId", since, reason FROM dns_unpublished ORDER BY since, key_id`)).rows;
  }

  async markUnpublished(keyId: number, at: Date, reason: string, fence: Fence): Promise<void> {
    await this.fenced(fence, (client) =>
      client.query(`INSERT INTO dns_unpublished (key_id, since, reason) VALUES ($1, $2, $3) ON CONFLICT (key_id) DO UPDATE SET reason = excluded.reason`, [
        keyId,
        at.toISOString(),
        reason,
      ]),
    );
  }

  async clearUnpublished(keyId: number, fence: Fence): Promise<void> {
    await this.fenced(fence, (client) => client.query(`DELETE FROM dns_unpublished WHERE key_id = $1`, [keyId]));
  }

  /** One transaction that holds the lease row at the writer's epoch (a takeover waits for it), or throws Fenced. */
  private async fenced<T>(fence: Fence, work: (client: pg.ClientBase) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      try {
        await checkFence(client, fence);
        const result = await work(client);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      }
    } finally {
      client.release();
    }
  }
}
