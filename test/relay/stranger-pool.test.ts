// The slots of clients that must log in from outside access.networks, under
// attack over loopback (127.0.0.2, .3 … via localAddress; access.networks
// lists only 127.0.0.1): one address cannot take them all, on either port;
// they are counted across the plain port and tlsPort together; and a
// stranger that does not log in is let go after listen.unadmittedTimeoutSeconds
// however many NOOPs it sends.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { hashPassword } from '../../src/access/passwords.ts';
import { RawSmtpClient } from '../fuzz/smtp-client.ts';
import { selfSignedCert, startTestRelay, tempDir, type TestRelay } from '../helpers/relay-harness.ts';

const greeting = async (port: number, localAddress: string, tls?: object): Promise<{ c: RawSmtpClient; first: string }> => {
  const c = await RawSmtpClient.connect({ port, localAddress, tls });
  return { c, first: (await c.readReply(5000))?.raw ?? '(none)' };
};

describe('stranger slots', () => {
  const dir = tempDir();
  let cert: { key: string; cert: string };
  let userHash: string;
  const relays: TestRelay[] = [];
  const start = async (listen: Record<string, unknown>) => {
    const relay = await startTestRelay({
      listen: { tls: cert, ...listen },
      access: { networks: ['127.0.0.1/32'], users: [{ name: 'exchange', password: userHash }] },
    });
    relays.push(relay);
    return relay;
  };
  before(async () => {
    cert = selfSignedCert(dir.path);
    userHash = await hashPassword('correct horse');
  });
  after(async () => {
    for (const relay of relays) await relay.close();
    dir.remove();
  });

  test('one address holds at most listen.maxUnadmittedClientsPerIp of the stranger slots; another address still gets in', async () => {
    const relay = await start({ maxUnadmittedClients: 6, maxUnadmittedClientsPerIp: 2, maxClientsPerIp: 20 });
    const held: RawSmtpClient[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const { c, first } = await greeting(relay.port, '127.0.0.2');
        held.push(c);
        assert.match(first, /^220 /);
      }
      const third = await greeting(relay.port, '127.0.0.2');
      held.push(third.c);
      assert.match(third.first, /^421 4\.7\.0 Too many unauthenticated connections from 127\.0\.0\.2, try again later/);
      const other = await greeting(relay.port, '127.0.0.3');
      held.push(other.c);
      assert.match(other.first, /^220 /);
    } finally {
      for (const c of held) await c.destroy();
    }
  });

  test('on tlsPort, 20 bare TCP connections from one address leave the stranger slots to others', async () => {
    const relay = await start({ tlsPort: 0, maxUnadmittedClients: 20, maxUnadmittedClientsPerIp: 4, maxClientsPerIp: 20, tlsHandshakeTimeoutSeconds: 10 });
    const tlsPort = relay.relay.ports.tls!;
    const bare = Array.from({ length: 20 }, () => {
      const socket = connect({ port: tlsPort, host: '127.0.0.1', localAddress: '127.0.0.4' });
      socket.on('error', () => {});
      return socket;
    });
    try {
      await Promise.all(bare.map((s) => new Promise((r) => s.once('connect', r))));
      const { c, first } = await greeting(tlsPort, '127.0.0.5', { rejectUnauthorized: false });
      assert.match(first, /^220 /, 'a client that must log in still gets a slot');
      await c.destroy();
    } finally {
      for (const s of bare) s.destroy();
    }
  });

  test('the pools count across the plain port and tlsPort together', async () => {
    const relay = await start({ tlsPort: 0, maxClients: 1, maxUnadmittedClients: 2, maxUnadmittedClientsPerIp: 2 });
    const tlsPort = relay.relay.ports.tls!;
    const held: RawSmtpClient[] = [];
    try {
      const admitted = await greeting(relay.port, '127.0.0.1');
      held.push(admitted.c);
      assert.match(admitted.first, /^220 /);
      // The one admitted slot is taken on the plain port: none is left on tlsPort.
      const second = await RawSmtpClient.connect({ port: tlsPort, localAddress: '127.0.0.1' });
      held.push(second);
      assert.equal(await second.startTls({ rejectUnauthorized: false }, 5000), false, 'turned away before the handshake');

      for (const address of ['127.0.0.6', '127.0.0.7']) {
        const { c, first } = await greeting(relay.port, address);
        held.push(c);
        assert.match(first, /^220 /);
      }
      const stranger = await RawSmtpClient.connect({ port: tlsPort, localAddress: '127.0.0.8' });
      held.push(stranger);
      assert.equal(await stranger.startTls({ rejectUnauthorized: false }, 5000), false, 'the two stranger slots are taken on the plain port');
    } finally {
      for (const c of held) await c.destroy();
    }
  });

  test('a stranger that does not log in is closed after listen.unadmittedTimeoutSeconds, however often it sends NOOP', async () => {
    const relay = await start({ unadmittedTimeoutSeconds: 2, socketTimeoutSeconds: 60, maxUnauthenticatedCommands: 1000 });
    // An admitted client, connected first, is not bound by it.
    const admitted = await greeting(relay.port, '127.0.0.1');
    const { c, first } = await greeting(relay.port, '127.0.0.9');
    assert.match(first, /^220 /);
    const started = Date.now();
    const timer = setInterval(() => void (!c.closed && c.write('NOOP\r\n')), 300);
    try {
      assert.ok(await c.waitClosed(8000), 'the relay closed the connection');
    } finally {
      clearInterval(timer);
    }
    assert.ok(Date.now() - started < 4000, `closed after ${Date.now() - started} ms`);
    assert.ok(c.replies.filter((r) => r.code === 250).length >= 3, 'its NOOPs were answered until then');
    assert.match(c.replies.at(-1)?.raw ?? '(none)', /^421 4\.7\.0 Not authenticated within 2 s, closing connection/);
    assert.equal((await admitted.c.command('NOOP', 3000))?.code, 250);
    await admitted.c.destroy();
  });
});
