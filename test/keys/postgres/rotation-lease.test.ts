// The rotation lease in PostgreSQL and its fencing epoch, with the clock
// passed in: a takeover raises the epoch, a renewal does not, and every write
// carrying an older epoch is refused in its own transaction.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Fenced } from '../../../src/keys/fence.ts';
import { PgKeyStore } from '../../../src/keys/pg-store.ts';
import { readEncryptionKey } from '../../../src/keys/sealing.ts';
import { PgRotationTables } from '../../../src/rotation/pg-rotation-tables.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { postgresOrSkip, startPgCluster, type PgCluster } from './pg-cluster.ts';
import { kekFile } from './support.ts';

const LEASE = 'rotation';
const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));

describe('the rotation lease in PostgreSQL', postgresOrSkip(), () => {
  let cluster: PgCluster;
  before(async () => {
    cluster = await startPgCluster();
  });
  after(async () => {
    await cluster?.stop();
  });

  test('a takeover raises the epoch; the former holder’s key step, observation and notice are refused, and nothing of them is written', async () => {
    const url = await cluster.createDatabase('lease');
    const store = await PgKeyStore.open({ url, dir: join(tempDir(), 'keys'), encryptionKey: readEncryptionKey(kekFile(tempDir())), refreshMs: 0 });
    const a = new PgRotationTables(store.openPool());
    const b = new PgRotationTables(store.openPool());
    try {
      const old = await store.generate({ domain: 'example.com', selector: 'old', algorithm: 'ed25519', activate: true });
      await store.generate({ domain: 'example.com', selector: 'new', algorithm: 'ed25519' });
      await store.retire('example.com', 'old');

      assert.equal(await a.takeLease(LEASE, 'a', at(0), at(10)), 1);
      assert.equal(await b.takeLease(LEASE, 'b', at(5), at(15)), null, 'not before it expires');
      assert.equal(await a.takeLease(LEASE, 'a', at(5), at(15)), 1, 'a renewal keeps the epoch');
      assert.equal(await a.renewLease(LEASE, 'a', 1, at(20)), true);
      // a is frozen past its lease; b takes over.
      assert.equal(await b.takeLease(LEASE, 'b', at(21), at(31)), 2);
      assert.equal(await a.renewLease(LEASE, 'a', 1, at(40)), false, 'the former holder cannot renew');

      const stale = { lease: LEASE, epoch: 1 };
      const revoke = [
        {
          keyId: old.id,
          domain: 'example.com',
          selector: 'old',
          from: 'retiring' as const,
          to: 'revoked' as const,
          at: at(22).toISOString(),
          by: 'scheduler' as const,
          why: 'test',
        },
      ];
      await assert.rejects(store.applyTransitions(revoke, stale), (err: unknown) => err instanceof Fenced && err.current === 2);
      await assert.rejects(store.generate({ domain: 'example.com', algorithm: 'ed25519', step: { fence: stale } }), Fenced);
      const observation = {
        keyId: old.id,
        server: '192.0.2.53',
        firstSeenMatching: null,
        lastChecked: at(22).toISOString(),
        lastState: 'match' as const,
        detail: '',
      };
      await assert.rejects(a.saveObservations([observation], stale), Fenced);
      await assert.rejects(a.recordNotification(`stuck:${old.id}`, old.id, at(22), stale), Fenced);
      await assert.rejects(a.markUnpublished(old.id, at(22), 'x', stale), Fenced);
      assert.equal((await cluster.psql('lease', `SELECT count(*) FROM events WHERE to_state = 'revoked'`)).trim(), '0');
      assert.equal((await cluster.psql('lease', `SELECT count(*) FROM keys`)).trim(), '2');
      assert.deepEqual(await a.observations(), []);
      assert.deepEqual([...(await a.notified())], []);
      assert.deepEqual(await a.unpublished(), []);

      // The new holder's writes go through.
      assert.equal(await store.applyTransitions(revoke, { lease: LEASE, epoch: 2 }), true);
      await b.saveObservations([observation], { lease: LEASE, epoch: 2 });
      assert.equal((await b.observations()).length, 1);

      // Given back, the lease is free at once, and the epoch never goes back.
      await b.releaseLease(LEASE, 'b');
      assert.equal(await a.takeLease(LEASE, 'a', at(23), at(33)), 3);
    } finally {
      await a.close();
      await b.close();
      await store.close();
    }
  });
});
