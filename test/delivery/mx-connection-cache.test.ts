// Direct delivery under backlog: a session that delivered is kept a moment
// and carries the next message to the same destination, as Postfix's
// connection cache does, within the connection limits. Each sink counts the
// connections it was opened.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { REUSE_COUNT, REUSE_TIME_MS, SessionCache, type SessionKey } from '../../src/delivery/session-cache.ts';
import { bufferOctets } from '../../src/message/octets.ts';
import type { RoutingRecord } from '../helpers/mx-dns-server.ts';
import { a, mx, PLAIN_MESSAGE, withMxWorld } from './mx-world.ts';

const DESTINATIONS = 20;
const PER_DESTINATION = 10;

/** d0.test … d19.test, each with its own exchanger on 127.0.0.(10 + n). */
const records: Record<string, RoutingRecord[]> = {};
const sinks = Array.from({ length: DESTINATIONS }, (_, n) => {
  records[`d${n}.test`] = [mx(10, `mx.d${n}.test`)];
  records[`mx.d${n}.test`] = [a(`127.0.0.${10 + n}`)];
  return { address: `127.0.0.${10 + n}` };
});

/**
 * A backlog delivered as the queue manager delivers it, `workers` messages at
 * a time: the destinations in turn, or each destination's messages together.
 */
async function backlog(deliver: (to: string) => Promise<number>, workers: number, order: 'in turn' | 'together'): Promise<number[]> {
  const count = DESTINATIONS * PER_DESTINATION;
  const destination = (i: number) => (order === 'in turn' ? i % DESTINATIONS : Math.floor(i / PER_DESTINATION));
  const messages = Array.from({ length: count }, (_, i) => `user${i}@d${destination(i)}.test`);
  const codes: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (next < messages.length) codes.push(await deliver(messages[next++]!));
    }),
  );
  return codes;
}

for (const { workers, order, perDomain } of [
  { workers: 20, order: 'in turn', perDomain: 1 },
  { workers: 8, order: 'together', perDomain: 2 },
] as const) {
  test(`${DESTINATIONS * PER_DESTINATION} messages to ${DESTINATIONS} destinations, ${order}, ${workers} at a time: at most maxConnectionsPerDomain (${perDomain}) connections opened per destination`, () =>
    withMxWorld(
      records,
      sinks,
      async ({ upstream, sinks: world }) => {
        const codes = await backlog(
          async (to) => (await upstream.deliver({ from: 'payroll@example.com', to: [to] }, bufferOctets(PLAIN_MESSAGE))).code,
          workers,
          order,
        );
        assert.deepEqual(new Set(codes), new Set([250]));
        for (const sink of world.sinks.values()) {
          assert.equal(sink.received.length, PER_DESTINATION);
          assert.ok(sink.peakConnections <= perDomain, `${sink.address}: ${sink.peakConnections} connections at once`);
        }
        // One connection per message would be 10 per destination.
        const opened = [...world.sinks.values()].map((sink) => sink.connections);
        assert.ok(
          opened.every((n) => n <= perDomain),
          `connections opened per destination: ${opened.join(' ')}`,
        );
      },
      { maxConnections: workers, maxConnectionsPerDomain: perDomain },
    ));
}

test('the session cache: taken by its exact key only, ended at its reuse limits, an idle one of the domain ended first to free a slot', async () => {
  let now = 1_000_000;
  const ended: string[] = [];
  const released: string[] = [];
  const cache = new SessionCache<string>(
    async (session) => void ended.push(session),
    () => now,
  );
  const key = (domain: string, plaintext = false): SessionKey => ({
    domain,
    host: `mx.${domain}`,
    address: '192.0.2.1',
    port: 25,
    requireTLS: false,
    plaintext,
  });
  const kept = (session: string, uses = 1, openedAt = now) => ({ session, release: () => void released.push(session), openedAt, uses });

  cache.park(key('a.test'), kept('a1'));
  assert.equal(cache.take(key('a.test', true)), undefined, 'a plaintext fallback never gets a session made with TLS offered');
  assert.equal(cache.take(key('b.test')), undefined);
  const a1 = cache.take(key('a.test'))!;
  assert.equal(a1.session, 'a1');
  assert.equal(cache.take(key('a.test')), undefined, 'taken once');

  cache.park(key('a.test'), kept('worn', REUSE_COUNT));
  cache.park(key('a.test'), kept('old', 1, now - REUSE_TIME_MS));
  await Promise.resolve();
  assert.deepEqual(ended, ['worn', 'old'], 'a session at a reuse limit is ended, not kept');
  assert.deepEqual(released, ['worn', 'old'], 'and its slot freed once it is gone');
  assert.equal(cache.take(key('a.test')), undefined);

  cache.park(key('b.test'), kept('b1'));
  cache.park(key('a.test'), kept('a2'));
  assert.equal(cache.freeSlotFor('c.test', true), false, 'c.test at its own limit: no idle session of its own to end');
  assert.equal(cache.freeSlotFor('b.test', false), true);
  await Promise.resolve();
  assert.deepEqual(ended.slice(2), ['b1'], "the domain's own idle session first");
  await cache.close();
  assert.deepEqual(ended.slice(3), ['a2']);
});
