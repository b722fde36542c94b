// The metrics listener under attack, with real HTTP requests to 127.0.0.x:
// a burst of wrong basic-auth passwords is refused before scrypt runs, a
// flood of them does not hold up the 250 of a message in the queue, slow
// clients are cut off, and connections are capped in all and per address.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { hashPassword } from '../../src/access/passwords.ts';
import { countScrypt } from '../helpers/scrypt-count.ts';
import { send, startTestRelay, type TestRelay } from '../helpers/relay-harness.ts';

const PASSWORD = 'correct horse battery';

/** One GET with basic auth from `localAddress`; resolves with the status (0 when the connection failed). */
function getAs(port: number, localAddress: string, auth: string, path = '/metrics'): Promise<number> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        localAddress,
        agent: false,
        timeout: 30_000,
        headers: { Authorization: `Basic ${Buffer.from(auth).toString('base64')}` },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

/** A raw TCP connection to the listener, with what it received and when it closed. */
function rawConnection(port: number, localAddress: string): { socket: Socket; received: () => string; closed: Promise<number> } {
  const socket = connect({ port, host: '127.0.0.1', localAddress });
  let text = '';
  socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  socket.on('error', () => {});
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
  return { socket, received: () => text, closed };
}

const within = <T>(promise: Promise<T>, ms: number) => Promise.race([promise, new Promise<null>((r) => setTimeout(() => r(null), ms))]);

describe('metrics listener limits', () => {
  let passwordHash: string;
  const relays: TestRelay[] = [];
  const start = async (metrics: Record<string, unknown>, config: Record<string, unknown> = {}) => {
    const relay = await startTestRelay({ ...config, metrics: { listen: '127.0.0.1:0', auth: { user: 'prometheus', passwordHash }, ...metrics } }, (store) => {
      store.generate({ domain: 'example.com', algorithm: 'ed25519', activate: true });
    });
    relays.push(relay);
    return relay;
  };
  before(async () => {
    passwordHash = await hashPassword(PASSWORD);
  });
  after(async () => {
    for (const relay of relays) await relay.close();
  });

  test('200 concurrent wrong passwords from one address: one is checked at a time, the rest are refused 429 unchecked', async (t) => {
    const relay = await start({ maxConnections: 400, maxConnectionsPerIp: 400 });
    const port = relay.relay.ports.metrics!;
    const scrypt = countScrypt();
    let statuses: number[];
    try {
      statuses = await Promise.all(
        Array.from({ length: 200 }, (_, i) => getAs(port, '127.0.0.2', i === 150 ? `prometheus:${PASSWORD}` : `prometheus:guess ${i}`)),
      );
    } finally {
      scrypt.stop();
    }
    const tally = Object.fromEntries([200, 401, 429, 503, 0].map((code) => [code, statuses.filter((s) => s === code).length]));
    t.diagnostic(`${scrypt.count()} of 200 passwords checked; statuses ${JSON.stringify(tally)}`);
    // Requests that reach the relay after an earlier wrong answer's hold may be checked too, but never more than the address's failures.
    assert.ok(scrypt.count() >= 1 && scrypt.count() <= 10, `${scrypt.count()} passwords checked; statuses ${JSON.stringify(tally)}`);
    assert.equal(tally[401]! + tally[200]!, scrypt.count(), `every checked password was answered; statuses ${JSON.stringify(tally)}`);
    assert.equal(tally[429], 200 - scrypt.count());
  });

  test('a flood of wrong passwords from 100 addresses does not hold up the 250 of a queued message', async (t) => {
    const relay = await start({ maxConnections: 400, maxConnectionsPerIp: 10 }, { delivery: { mode: 'queue', upstream: { type: 'file' } } });
    const port = relay.relay.ports.metrics!;
    const message = 'From: <a@example.com>\r\nTo: <b@example.net>\r\nSubject: during the flood\r\n\r\nbody\r\n';
    const idle = Date.now();
    assert.equal((await send({ port: relay.port, from: 'a@example.com', to: ['b@example.net'], raw: message })).ok, true);
    const idleMs = Date.now() - idle;
    const scrypt = countScrypt();
    try {
      const flood = Promise.all(Array.from({ length: 300 }, (_, i) => getAs(port, `127.0.2.${(i % 100) + 1}`, `prometheus:guess ${i}`)));
      assert.ok((await scrypt.reached(1)) >= 1, 'the flood is being checked');
      const started = Date.now();
      const sent = await send({ port: relay.port, from: 'a@example.com', to: ['b@example.net'], raw: message });
      const floodedMs = Date.now() - started;
      assert.ok(sent.ok && /queued as/.test(sent.response), JSON.stringify(sent));
      await flood;
      t.diagnostic(`250 after ${floodedMs} ms during the flood, ${idleMs} ms idle; ${scrypt.count()} of 300 passwords checked`);
      // Without the limits it took a minute; the bound leaves room for a busy test machine, not for that.
      const bound = Math.max(2000, 5 * idleMs);
      assert.ok(floodedMs < bound, `the 250 took ${floodedMs} ms during the flood (${idleMs} ms idle, bound ${bound} ms); ${scrypt.count()} passwords checked`);
    } finally {
      scrypt.stop();
    }
  });

  test('a request trickled one byte at a time, and a connection that says nothing, are closed after metrics.requestTimeoutSeconds', async () => {
    const relay = await start({ requestTimeoutSeconds: 2 });
    const port = relay.relay.ports.metrics!;
    const started = Date.now();
    const slow = rawConnection(port, '127.0.0.3');
    const silent = rawConnection(port, '127.0.0.4');
    const bytes = 'GET /metrics HTTP/1.1\r\nHost: relay.test\r\nX-Slow: ' + 'a'.repeat(200);
    let sent = 0;
    const timer = setInterval(() => {
      if (sent < bytes.length && !slow.socket.destroyed) slow.socket.write(bytes[sent++]!);
    }, 200);
    try {
      const closed = await within(Promise.all([slow.closed, silent.closed]), 8000);
      assert.ok(closed, `still open after 8 s (trickled ${sent} bytes)`);
      for (const at of closed) assert.ok(at - started < 4500, `closed after ${at - started} ms`);
    } finally {
      clearInterval(timer);
      slow.socket.destroy();
      silent.socket.destroy();
    }
  });

  test('connections past metrics.maxConnectionsPerIp are answered 503; other addresses are still served', async () => {
    const relay = await start({ maxConnectionsPerIp: 3, maxConnections: 5 });
    const port = relay.relay.ports.metrics!;
    const held = [1, 2, 3].map(() => rawConnection(port, '127.0.0.5'));
    try {
      await Promise.all(held.map((h) => new Promise((r) => h.socket.once('connect', r))));
      const fourth = rawConnection(port, '127.0.0.5');
      fourth.socket.write('GET /readyz HTTP/1.1\r\nHost: relay.test\r\n\r\n');
      assert.ok(await within(fourth.closed, 5000), 'the connection past the limit is closed');
      assert.match(fourth.received(), /^HTTP\/1\.1 503 /);
      assert.equal(await getAs(port, '127.0.0.6', 'x:y', '/readyz'), 200, 'another address is served');
      // Five in all: two more from other addresses fill the listener.
      const others = [7, 8].map((n) => rawConnection(port, `127.0.0.${n}`));
      held.push(...others);
      await Promise.all(others.map((h) => new Promise((r) => h.socket.once('connect', r))));
      const past = rawConnection(port, '127.0.0.9');
      past.socket.write('GET /readyz HTTP/1.1\r\nHost: relay.test\r\n\r\n');
      assert.ok(await within(past.closed, 5000));
      assert.match(past.received(), /^HTTP\/1\.1 503 /, 'metrics.maxConnections counts every address');
    } finally {
      for (const h of held) h.socket.destroy();
    }
  });
});
