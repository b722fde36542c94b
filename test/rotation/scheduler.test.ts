// The rotation scheduler on a real key store shared by several schedulers (as
// by several relays), with an injected clock and an injected DNS observer:
// the lease lets one act at a time, a restart in the middle of a step neither
// loses nor repeats it, and a failing pass or DNS observation is reported,
// not fatal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { configSchema } from '../../src/config/schema.ts';
import { directOwnMail } from '../../src/daemon/own-mail.ts';
import { createUpstream } from '../../src/delivery/create-upstream.ts';
import { SqliteKeyStore } from '../../src/keys/store.ts';
import type { KeyStore } from '../../src/keys/key-store.ts';
import { silentLogger } from '../../src/common/logger.ts';
import type { DnsObserver } from '../../src/rotation/dns-observer.ts';
import { getTasks } from 'node-cron';
import { LeaseLost, RotationScheduler } from '../../src/rotation/scheduler.ts';
import { tempDir } from '../helpers/tmp.ts';

const DAY = 86_400_000;
const LEASE_MS = 60_000;

/** DNS that serves every record as it must; `gate` holds servers() until released. */
function servingDns(gate?: Promise<void>): () => DnsObserver {
  return () => ({
    servers: async () => {
      await gate;
      return ['192.0.2.53:53'];
    },
    check: async () => ({ state: 'match', detail: 'served' }),
  });
}

/** A logger at info whose lines, parsed, are kept in `lines`. */
function capturedLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk, _e, done) {
        lines.push(JSON.parse(String(chunk)));
        done();
      },
    }),
  );
  return { lines, logger };
}

function setUp() {
  const dir = tempDir('dkim-relay-scheduler-');
  const config = configSchema.parse({
    keys: { dir: join(dir, 'keys') },
    delivery: { upstream: { type: 'file', dir: join(dir, 'outbox') } },
    rotation: { interval: '90d', publishFor: '48h', check: '0 0 1 1 *' },
  });
  const seed = SqliteKeyStore.open(config.keys.dir);
  const first = seed.generate({ domain: 'example.com', selector: 'first', algorithm: 'ed25519', activate: true });
  seed.close();
  const clock = { now: Date.parse(first.createdAt) + 91 * DAY };
  const stores: KeyStore[] = [];
  const scheduler = (observer = servingDns(), logger = silentLogger(), queue?: { oldestSignedWith(domain: string, selector: string): number | null }) => {
    const store = SqliteKeyStore.open(config.keys.dir);
    stores.push(store);
    return new RotationScheduler({
      config,
      store,
      mail: directOwnMail({ config, store, hostname: 'relay.test' }, createUpstream(config.delivery.upstream, logger)),
      hostname: 'relay.test',
      logger,
      now: () => clock.now,
      observer,
      leaseMs: LEASE_MS,
      queue,
    });
  };
  const events = () => {
    const store = SqliteKeyStore.open(config.keys.dir);
    try {
      return store.history('example.com').map((e) => `${e.selector === 'first' ? 'first' : 'next'} ${e.from ?? '-'}→${e.to}`);
    } finally {
      store.close();
    }
  };
  return { config, clock, scheduler, events, stores };
}

test('two schedulers sharing one store never both act: the lease holder does, the other skips until it is released or expires', async () => {
  const { clock, scheduler, events } = setUp();
  let release!: () => void;
  const a = scheduler(servingDns(new Promise<void>((resolve) => (release = resolve))));
  const b = scheduler();

  const passA = a.runOnce(); // takes the lease, then waits for DNS
  const passB = await b.runOnce();
  assert.deepEqual(passB, { ran: false, applied: [] }, 'b skips while a holds the lease');
  release();
  assert.deepEqual(
    (await passA).applied.map((x) => x.kind),
    ['create'],
  );
  assert.deepEqual(events(), ['first -→active', 'next -→pending']);

  // a is gone without releasing (a crash): b waits for the lease to expire, then acts.
  assert.equal((await b.runOnce()).ran, false);
  clock.now += LEASE_MS + 1;
  assert.equal((await b.runOnce()).ran, true);
  assert.equal((await a.runOnce()).ran, false, 'now b holds it');
  await b.stop(); // gives the lease back at once
  assert.equal((await a.runOnce()).ran, true);
  await a.stop();
});

test('a holder whose lease passed to another relay mid-pass stops before its next step', async () => {
  const { clock, scheduler, events } = setUp();
  let release!: () => void;
  const a = scheduler(servingDns(new Promise<void>((resolve) => (release = resolve))));
  const b = scheduler();
  const passA = a.runOnce();
  clock.now += LEASE_MS + 1; // a is stuck in DNS longer than its lease
  assert.deepEqual(
    (await b.runOnce()).applied.map((x) => x.kind),
    ['create'],
  );
  release();
  await assert.rejects(passA, LeaseLost);
  assert.deepEqual(events(), ['first -→active', 'next -→pending'], 'the rotation was started once');
  await b.stop();
  await a.stop();
});

test('a restart in the middle of a step neither loses nor repeats it', async () => {
  const { clock, scheduler, events, config } = setUp();
  const first = scheduler();
  assert.deepEqual(
    (await first.runOnce()).applied.map((x) => x.kind),
    ['create'],
  );
  clock.now += 3_600_000;
  assert.deepEqual((await first.runOnce()).applied, [], 'DNS serves the new key from now on');
  await first.stop();
  clock.now += 3 * DAY; // served everywhere for publishFor since the last pass
  // Crash while activating, before the transaction commits: nothing is lost.
  const crashing = scheduler();
  const store = (crashing as unknown as { options: { store: KeyStore } }).options.store;
  store.applyTransitions = () => {
    throw new Error('power cut');
  };
  await assert.rejects(crashing.runOnce(), /power cut/);
  assert.deepEqual(events(), ['first -→active', 'next -→pending'], 'nothing half done');

  // Restarted (the dead one's lease expires): activation happens once.
  clock.now += LEASE_MS + 1;
  const restarted = scheduler();
  assert.deepEqual(
    (await restarted.runOnce()).applied.map((x) => x.kind),
    ['activate'],
  );
  await restarted.stop();

  // Crash while removing, after the commit and before the file is deleted: the next pass deletes it, no step twice.
  clock.now += 8 * DAY; // first is revoked
  const revoking = scheduler();
  assert.deepEqual(
    (await revoking.runOnce()).applied.map((x) => x.kind),
    ['revoke'],
  );
  await revoking.stop();
  clock.now += 31 * DAY;
  const removing = scheduler();
  const removingStore = (removing as unknown as { options: { store: KeyStore } }).options.store;
  const realDelete = removingStore.deleteRemovedFiles.bind(removingStore);
  removingStore.deleteRemovedFiles = () => {
    throw new Error('power cut');
  };
  await assert.rejects(removing.runOnce(), /power cut/);
  const file = join(config.keys.dir, 'first._domainkey.example.com.pem');
  assert.ok(existsSync(file), 'the crash left the file');
  removingStore.deleteRemovedFiles = realDelete;
  clock.now += LEASE_MS + 1;
  const again = scheduler();
  assert.deepEqual((await again.runOnce()).applied, [], 'the removal is not repeated');
  assert.ok(!existsSync(file), 'the file is deleted by the next pass');
  assert.deepEqual(events(), [
    'first -→active',
    'next -→pending',
    'first active→retiring',
    'next pending→active',
    'first retiring→revoked',
    'first revoked→removed',
  ]);
  await again.stop();
});

test("a retiring key is not revoked while this relay's queue holds mail it signed", async () => {
  const { clock, scheduler, events } = setUp();
  let queued: number | null = null;
  const queue = { oldestSignedWith: (domain: string, selector: string) => (domain === 'example.com' && selector === 'first' ? queued : null) };
  const relay = scheduler(servingDns(), silentLogger(), queue);
  assert.deepEqual(
    (await relay.runOnce()).applied.map((x) => x.kind),
    ['create'],
  );
  clock.now += 3_600_000;
  assert.deepEqual((await relay.runOnce()).applied, [], 'DNS serves the new key from now on');
  clock.now += 3 * DAY;
  assert.deepEqual(
    (await relay.runOnce()).applied.map((x) => x.kind),
    ['activate'],
  );
  queued = clock.now; // a message signed by the old key is still waiting for its upstream
  clock.now += 8 * DAY; // past retireAfter (7d)
  assert.deepEqual((await relay.runOnce()).applied, [], 'held while the queued mail waits');
  queued = null; // delivered
  assert.deepEqual(
    (await relay.runOnce()).applied.map((x) => x.kind),
    ['revoke'],
  );
  assert.deepEqual(events(), ['first -→active', 'next -→pending', 'first active→retiring', 'next pending→active', 'first retiring→revoked']);
  await relay.stop();
});

test('a failing pass is logged once per cause under the task rotation, and the next tick runs it again', async () => {
  const { scheduler, stores } = setUp();
  const { lines, logger } = capturedLogger();
  const s = scheduler(servingDns(), logger);
  const store = stores.at(-1)!;
  const list = store.list.bind(store);
  store.list = () => {
    throw new Error('disk I/O error');
  };
  assert.equal(await s.tick(), undefined);
  assert.equal(await s.tick(), undefined);
  const failures = lines.filter((l) => l.task === 'rotation' && l.level === 50);
  assert.equal(failures.length, 1, JSON.stringify(lines));
  assert.equal(failures[0]!.err, 'disk I/O error');
  store.list = list;
  const result = await s.tick();
  assert.deepEqual(
    result?.applied.map((a) => a.kind),
    ['create'],
  );
  assert.ok(lines.some((l) => l.task === 'rotation' && l.msg === 'background task rotation works again'));
  await s.stop();
});

test('DNS that cannot be observed holds the keys that wait for it; the rest of the pass goes on', async () => {
  const { clock, scheduler, events } = setUp();
  const { lines, logger } = capturedLogger();
  let broken = true;
  const s = scheduler(
    () => ({
      servers: async () => {
        if (broken) throw new Error('resolver exploded');
        return ['192.0.2.53:53'];
      },
      check: async () => ({ state: 'match', detail: 'served' }),
    }),
    logger,
  );
  // The rotation is due by time alone: the new key is made, and waits for DNS.
  assert.deepEqual(
    (await s.tick())?.applied.map((a) => a.kind),
    ['create'],
  );
  const failure = lines.find((l) => l.task === 'dns-observation');
  assert.ok(failure, JSON.stringify(lines));
  assert.equal(failure.err, 'example.com: resolver exploded');
  clock.now += 3 * DAY;
  assert.deepEqual((await s.tick())?.applied, [], 'not activated: no DNS server was seen serving it');
  broken = false;
  await s.tick();
  clock.now += 3 * DAY;
  assert.deepEqual(
    (await s.tick())?.applied.map((a) => a.kind),
    ['activate'],
    'activated once DNS served it for publishFor',
  );
  assert.deepEqual(events(), ['first -→active', 'next -→pending', 'first active→retiring', 'next pending→active']);
  await s.stop();
});

test('without rotation.notify, what needs a person is logged once, and never said to be sent', async () => {
  const { scheduler } = setUp();
  const { lines, logger } = capturedLogger();
  // The active key's record is not served: receivers cannot verify it, a person must publish it.
  const s = scheduler(() => ({ servers: async () => ['192.0.2.53:53'], check: async () => ({ state: 'missing', detail: 'NXDOMAIN' }) }), logger);
  const kinds: string[] = [];
  for (let i = 0; i < 3; i++) kinds.push(...((await s.tick())?.applied.map((a) => a.kind) ?? []));
  assert.equal(kinds.filter((k) => k === 'notify').length, 1, `one notice in three passes: ${kinds.join(', ')}`);
  const asked = lines.filter((l) => l.msg === 'rotation needs a person (set rotation.notify to be told by mail)');
  assert.equal(asked.length, 1, JSON.stringify(lines));
  assert.deepEqual(asked[0]!.records, ['first._domainkey.example.com']);
  assert.ok(!lines.some((l) => l.msg === 'rotation step: notice sent'), 'nothing was sent');
  await s.stop();
});

test('rotation.check: off: start() schedules nothing, so no pass ever runs by itself', async () => {
  const dir = tempDir('dkim-relay-scheduler-off-');
  const config = configSchema.parse({
    keys: { dir: join(dir, 'keys') },
    delivery: { upstream: { type: 'file', dir: join(dir, 'outbox') } },
    rotation: { check: 'off', interval: '1s' },
  });
  const { lines, logger } = capturedLogger();
  const store = SqliteKeyStore.open(config.keys.dir);
  let asked = 0;
  const observer = (): DnsObserver => ({
    servers: async () => {
      asked++;
      return [];
    },
    check: async () => ({ state: 'match', detail: '' }),
  });
  const before = getTasks().size;
  const scheduler = new RotationScheduler({
    config,
    store,
    mail: directOwnMail({ config, store, hostname: 'relay.test' }, createUpstream(config.delivery.upstream, logger)),
    hostname: 'relay.test',
    logger,
    observer,
  });
  scheduler.start();
  try {
    assert.equal(getTasks().size, before, 'no cron task');
    assert.ok(lines.some((l) => l.msg === 'rotation scheduler off (rotation.check: off)'));
    assert.equal(asked, 0);
  } finally {
    await scheduler.stop();
    store.close();
  }
});

test("a client's chain is rotated on its own by the real scheduler: its new key is in its chain, named for it, and replaces only its key once DNS served it", async () => {
  const { config, clock, scheduler } = setUp();
  const seed = SqliteKeyStore.open(config.keys.dir);
  const own = seed.generate({ domain: 'example.com', client: 'scanner', algorithm: 'ed25519', activate: true, step: { at: new Date(clock.now - 91 * DAY) } });
  seed.close();
  const s = scheduler();
  // Both chains' keys have signed for the interval: each gets a successor of its own.
  assert.deepEqual(
    (await s.runOnce()).applied.map((a) => a.kind),
    ['create', 'create'],
  );
  const store = SqliteKeyStore.open(config.keys.dir);
  try {
    const pending = store.list('example.com').filter((k) => k.state === 'pending');
    assert.deepEqual(pending.map((k) => [k.client, k.selector.replace(/\d{6}/, 'YYYYMM')]).sort(), [
      [null, 'sYYYYMMa'],
      ['scanner', 'scanner-YYYYMMa'],
    ]);
    // DNS serves every record; after publishFor both activate, each retiring the old key of its own chain.
    await s.runOnce();
    clock.now += 49 * 3_600_000;
    await s.runOnce();
    const after = store.list('example.com');
    assert.equal(after.find((k) => k.id === own.id)!.state, 'retiring');
    assert.equal(after.find((k) => k.selector === 'first')!.state, 'retiring');
    assert.deepEqual(
      store.activeKeys('example.com', 'scanner').map((k) => k.selector),
      pending.filter((k) => k.client === 'scanner').map((k) => k.selector),
    );
  } finally {
    store.close();
    await s.stop();
  }
});
