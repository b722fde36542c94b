// metrics.auth: basic auth on / and /metrics with a `dkim-relay passwd` hash;
// /healthz and /readyz stay open for probes. And the configuration refuses a
// listener reachable from other machines without it.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { configSchema } from '../../src/config/schema.ts';
import { parseConfig } from '../../src/config/load.ts';
import { UserError } from '../../src/common/errors.ts';
import { hashPassword } from '../../src/access/passwords.ts';
import { startTestRelay, type TestRelay } from '../helpers/relay-harness.ts';
import { get } from './support.ts';

describe('a relay with metrics.auth', () => {
  let relay: TestRelay;
  let port = 0;
  before(async () => {
    const passwordHash = await hashPassword('correct horse battery');
    relay = await startTestRelay({ metrics: { listen: '127.0.0.1:0', auth: { user: 'prometheus', passwordHash } } }, (store) => {
      store.generate({ domain: 'example.com', algorithm: 'ed25519', activate: true });
    });
    port = relay.relay.ports.metrics!;
  });
  after(() => relay.close());

  test('/ and /metrics ask for the password and accept the right one', async () => {
    for (const path of ['/', '/metrics']) {
      const none = await get(port, path);
      assert.equal(none.status, 401, path);
      assert.match(String(none.headers['www-authenticate']), /^Basic realm="dkim-relay"/);
      assert.ok(!none.body.includes('example.com'));
      // Each failed login slows the next answer to this client (1 s, 2 s, …): one of each kind per path.
      const wrong = path === '/' ? 'prometheus:wrong password' : 'grafana:correct horse battery';
      assert.equal((await get(port, path, { auth: wrong })).status, 401, `${path}: ${wrong}`);
      const right = await get(port, path, { auth: 'prometheus:correct horse battery' });
      assert.equal(right.status, 200, path);
      assert.match(right.body, path === '/' ? /example\.com/ : /dkim_relay_messages_received_total/);
    }
  });

  test('/healthz and /readyz answer without a password', async () => {
    assert.equal((await get(port, '/healthz')).status, 200);
    assert.equal((await get(port, '/readyz')).status, 200);
  });

  test('only GET and HEAD; unknown paths are 404', async () => {
    assert.equal((await get(port, '/healthz', { method: 'POST' })).status, 405);
    assert.equal((await get(port, '/nothing-here')).status, 404);
  });
});

describe('metrics configuration', () => {
  test('defaults: enabled, 127.0.0.1:9125, no auth, bounded connections', () => {
    const { metrics } = configSchema.parse({});
    assert.deepEqual(metrics, { enabled: true, listen: '127.0.0.1:9125', maxConnections: 32, maxConnectionsPerIp: 8, requestTimeoutSeconds: 10 });
  });

  test('a listener other machines can reach needs metrics.auth', () => {
    assert.throws(
      () => parseConfig('metrics: {listen: "0.0.0.0:9125"}\n', 'relay.yaml'),
      (err: UserError) => {
        assert.match(err.toLine(), /^relay\.yaml: metrics\.auth: is needed to listen on 0\.0\.0\.0:9125, which is not a loopback address — set metrics\.auth/);
        return true;
      },
    );
    assert.doesNotThrow(() => parseConfig('metrics: {listen: "[::1]:9125"}\n', 'relay.yaml'));
    assert.doesNotThrow(() => parseConfig('metrics: {listen: "0.0.0.0:9125", enabled: false}\n', 'relay.yaml'));
  });

  test('listen must be IP:PORT, and the password a passwd hash', () => {
    assert.throws(() => parseConfig('metrics: {listen: "localhost:9125"}\n', 'relay.yaml'), /metrics\.listen: must be IP:PORT/);
    assert.throws(() => parseConfig('metrics: {auth: {user: p, passwordHash: secret}}\n', 'relay.yaml'), /metrics\.auth\.passwordHash: not a complete hash/);
  });
});

describe('a reload on a fixed metrics.listen', () => {
  test('the new relay takes the open listener over; the old one stopping leaves it open', async () => {
    // A port that was free a moment ago: the takeover only applies to a fixed port.
    const { createServer } = await import('node:net');
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));

    const listen = `127.0.0.1:${port}`;
    const old = await startTestRelay({ metrics: { listen } }, (store) => store.generate({ domain: 'old.example', algorithm: 'ed25519', activate: true }));
    const fresh = await startTestRelay({ metrics: { listen } }, (store) => store.generate({ domain: 'new.example', algorithm: 'ed25519', activate: true }));
    try {
      assert.equal(fresh.relay.ports.metrics, port);
      await old.close();
      const page = await get(port, '/');
      assert.equal(page.status, 200);
      assert.match(page.body, /new\.example/);
      assert.doesNotMatch(page.body, /old\.example/);
    } finally {
      await fresh.close();
    }
    await assert.rejects(get(port, '/readyz'), 'closed with the relay that owned it last');
  });

  test('a new relay that stops first (a reload that failed) hands the listener back to the old one, never closing it', async () => {
    const old = await startTestRelay({ metrics: { listen: '127.0.0.1:0' } }, (store) =>
      store.generate({ domain: 'old.example', algorithm: 'ed25519', activate: true }),
    );
    // A reload names the port the old relay was given.
    const port = old.relay.ports.metrics!;
    try {
      const fresh = await startTestRelay({ metrics: { listen: `127.0.0.1:${port}` } }, (store) =>
        store.generate({ domain: 'new.example', algorithm: 'ed25519', activate: true }),
      );
      assert.equal(fresh.relay.ports.metrics, port);
      assert.match((await get(port, '/')).body, /new\.example/);
      await fresh.close();
      const page = await get(port, '/');
      assert.equal(page.status, 200);
      assert.match(page.body, /old\.example/);
    } finally {
      await old.close();
    }
    await assert.rejects(get(port, '/readyz'), 'closed with the last relay');
  });
});
