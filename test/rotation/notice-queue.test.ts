// Rotation notices never hold up rotation: in queue mode a notice is queued
// like a delivery status notification and delivered once the upstream takes
// mail again; in sync mode a notice the upstream refuses is logged, the pass
// carries on, and a notice still due is tried again at the next pass.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DnsObserver } from '../../src/rotation/dns-observer.ts';
import { verifyWithDkimpy } from '../helpers/independent-verify.ts';
import { startSink, startTestRelay, type Sink, type SinkBehaviour } from '../helpers/relay-harness.ts';

const DAY = 86_400_000;
const NOTIFY = 'postmaster@example.com';

/** DNS that serves every record as it must, or misses every one. */
const dns =
  (state: 'match' | 'missing'): (() => DnsObserver) =>
  () => ({
    servers: async () => ['192.0.2.53:53'],
    check: async () => ({ state, detail: state === 'match' ? 'served' : 'not served' }),
  });

async function waitFor(what: string, done: () => boolean, ms = 20_000): Promise<void> {
  for (let i = 0; i < ms / 50; i++) {
    if (done()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out waiting for ${what}`);
}

async function relayWith(mode: 'queue' | 'sync', port: number, observer: () => DnsObserver, clock: { now: number }) {
  return startTestRelay(
    {
      delivery: { mode, upstream: { type: 'smtp', host: '127.0.0.1', port } },
      queue: { retryAfter: '1s', maxRetryInterval: '1s' },
      rotation: { check: 'off', interval: '90d', publishFor: '48h', notify: NOTIFY },
    },
    (store) => store.generate({ domain: 'example.com', selector: 'first', algorithm: 'rsa', bits: 2048, activate: true }),
    { closeTimeoutMs: 2000, rotation: { now: () => clock.now, observer } },
  );
}

const toNotify = (sink: Sink) => sink.received.filter((m) => m.from === '' && m.to.includes(NOTIFY));

test('queue mode, upstream down during a pass: the step completes, the notice is queued and delivered once the upstream is back', async () => {
  const down = await startSink();
  const port = down.port;
  await down.close(); // connections to its port are refused
  const clock = { now: Date.now() + 91 * DAY };
  const relay = await relayWith('queue', port, dns('match'), clock);
  let sink: Sink | undefined;
  try {
    const pass = await relay.relay.rotation.runOnce();
    assert.deepEqual(
      pass.applied.map((a) => a.kind),
      ['create'],
      'the rotation step is taken',
    );
    const index = relay.relay.queue!.index;
    const queued = index.list().map((m) => index.show(m.id)!);
    assert.deepEqual(
      queued.map((m) => [m.sender, m.recipients.map((r) => r.address)]),
      [['', [NOTIFY]]],
      'the notice waits in the queue',
    );

    sink = await startSink({}, port);
    await waitFor('the notice to arrive', () => toNotify(sink!).length === 1 && index.depth().messages === 0);
    const [notice] = toNotify(sink);
    assert.match(notice!.raw.toString('utf8'), /^Subject: \[dkim-relay\] publish [a-z0-9]+\._domainkey\.example\.com$/m);
    assert.deepEqual(await verifyWithDkimpy(notice!.raw, relay.records()), [true], 'signed like any message');
  } finally {
    await relay.close();
    await sink?.close();
  }
});

test('queue mode, upstream down: a "needs attention" notice does not fail the pass either, and is sent once', async () => {
  const down = await startSink();
  const port = down.port;
  await down.close();
  const clock = { now: Date.now() };
  const relay = await relayWith('queue', port, dns('missing'), clock);
  let sink: Sink | undefined;
  try {
    assert.deepEqual(
      (await relay.relay.rotation.runOnce()).applied.map((a) => a.kind),
      ['notify'],
    );
    assert.deepEqual((await relay.relay.rotation.runOnce()).applied, [], 'recorded: not planned again');
    sink = await startSink({}, port);
    await waitFor('the notice to arrive', () => toNotify(sink!).length === 1 && relay.relay.queue!.index.depth().messages === 0);
    assert.match(toNotify(sink)[0]!.raw.toString('utf8'), /needs attention/);
  } finally {
    await relay.close();
    await sink?.close();
  }
});

test('sync mode, upstream refusing: the pass completes, the notice is tried again at the next pass and then sent', async () => {
  const behaviour: SinkBehaviour = { rcpt: { [NOTIFY]: { code: 451, text: '4.3.0 try later' } } };
  const sink = await startSink(behaviour);
  const clock = { now: Date.now() };
  const relay = await relayWith('sync', sink.port, dns('missing'), clock);
  try {
    const first = await relay.relay.rotation.runOnce();
    assert.equal(first.ran, true);
    assert.deepEqual(first.applied, [], 'the notice was not handed over, so its step is not recorded');
    assert.equal(toNotify(sink).length, 0);
    behaviour.rcpt = {};
    clock.now += 3_600_000;
    assert.deepEqual(
      (await relay.relay.rotation.runOnce()).applied.map((a) => a.kind),
      ['notify'],
    );
    assert.equal(toNotify(sink).length, 1);
    assert.deepEqual((await relay.relay.rotation.runOnce()).applied, [], 'sent once');
  } finally {
    await relay.close();
    await sink.close();
  }
});
