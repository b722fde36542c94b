// Attacks over loopback, each with a distinct client address (127.0.0.2, .3 …
// via localAddress) where access.networks lists only 127.0.0.1: strangers
// cannot starve the relay, trickle forever, stall TLS handshakes, read AUTH
// in clear, guess passwords quickly or tell user names apart.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { pino } from 'pino';
import { configSchema } from '../../src/config/schema.ts';
import { hashPassword } from '../../src/access/passwords.ts';
import { startRelay } from '../../src/daemon/daemon.ts';
import { RawSmtpClient, type Reply } from '../fuzz/smtp-client.ts';
import { selfSignedCert, startTestRelay, tempDir, type TestRelay } from '../helpers/relay-harness.ts';
import { until } from '../helpers/until.ts';

const PASSWORD = 'correct horse';
const plainAuth = (user: string, pass: string) => `AUTH PLAIN ${Buffer.from(`\0${user}\0${pass}`).toString('base64')}`;

async function client(port: number, localAddress: string, tls?: ConnectionOptions): Promise<RawSmtpClient> {
  return RawSmtpClient.connect({ port, localAddress, tls });
}

/** Greeting, EHLO, STARTTLS, EHLO again: returns the client and the EHLO reply after TLS. */
async function startTlsSession(port: number, localAddress: string): Promise<{ c: RawSmtpClient; ehlo: Reply | null }> {
  const c = await client(port, localAddress);
  assert.equal((await c.readReply(5000))?.code, 220);
  assert.equal((await c.command('EHLO attacker.example', 5000))?.code, 250);
  assert.equal((await c.command('STARTTLS', 5000))?.code, 220);
  assert.ok(await c.startTls());
  return { c, ehlo: await c.command('EHLO attacker.example', 5000) };
}

describe('hardening against strangers', () => {
  const dir = tempDir();
  let cert: { key: string; cert: string };
  let userHash: string;
  const relays: TestRelay[] = [];
  const start = async (config: Record<string, unknown>) => {
    const relay = await startTestRelay(config);
    relays.push(relay);
    return relay;
  };
  const withAuth = (listen: Record<string, unknown> = {}, access: Record<string, unknown> = {}) => ({
    listen: { tls: cert, ...listen },
    access: { networks: ['127.0.0.1/32'], users: [{ name: 'exchange', password: userHash }], ...access },
  });

  before(async () => {
    cert = selfSignedCert(dir.path);
    userHash = await hashPassword(PASSWORD);
  });
  after(async () => {
    for (const relay of relays) await relay.close();
    dir.remove();
  });

  test('a stranger that cannot authenticate is refused 554 5.7.1 with its address, and cannot fill listen.maxClients', async () => {
    const relay = await start({ listen: { maxClients: 10 }, access: { networks: ['127.0.0.1/32'] } });
    const strangers: RawSmtpClient[] = [];
    try {
      for (let i = 2; i < 14; i++) strangers.push(await client(relay.port, `127.0.0.${i}`));
      for (const [i, s] of strangers.entries()) {
        const first = await s.readReply(3000);
        assert.match(first?.raw ?? '(none)', new RegExp(`^554 5\\.7\\.1 127\\.0\\.0\\.${i + 2} `));
        assert.ok(await s.waitClosed(3000), 'closed at once');
      }
      const allowed = await client(relay.port, '127.0.0.1');
      assert.equal((await allowed.readReply(3000))?.code, 220);
      assert.equal((await allowed.command('NOOP', 3000))?.code, 250);
      await allowed.destroy();
    } finally {
      for (const s of strangers) await s.destroy();
    }
  });

  test('strangers that may AUTH get listen.maxUnadmittedClients slots of their own, never those of admitted clients', async () => {
    const relay = await start(withAuth({ maxClients: 2, maxUnadmittedClients: 3 }));
    const held: RawSmtpClient[] = [];
    try {
      for (let i = 2; i <= 4; i++) {
        const s = await client(relay.port, `127.0.0.${i}`);
        assert.equal((await s.readReply(3000))?.code, 220);
        assert.equal((await s.command('NOOP', 3000))?.code, 250);
        held.push(s);
      }
      const fourth = await client(relay.port, '127.0.0.5');
      held.push(fourth);
      assert.match((await fourth.readReply(3000))?.raw ?? '(none)', /^421 4\.7\.0 Too many connected clients/);
      for (let i = 0; i < 2; i++) {
        const admitted = await client(relay.port, '127.0.0.1');
        held.push(admitted);
        assert.equal((await admitted.readReply(3000))?.code, 220, 'admitted clients keep their listen.maxClients slots');
      }
    } finally {
      for (const s of held) await s.destroy();
    }
  });

  test('a client that logs in leaves the stranger slots to the next one (Exchange over AUTH does not crowd out logins)', async () => {
    const relay = await start(withAuth({ maxClients: 5, maxUnadmittedClients: 2 }));
    const held: RawSmtpClient[] = [];
    try {
      for (let i = 2; i <= 4; i++) {
        const { c } = await startTlsSession(relay.port, `127.0.0.${i}`);
        held.push(c);
        assert.equal((await c.command(plainAuth('exchange', PASSWORD), 5000))?.code, 235, `login ${i - 1}`);
      }
      const waiting = await client(relay.port, '127.0.0.9');
      held.push(waiting);
      assert.equal((await waiting.readReply(3000))?.code, 220, 'three logged-in sessions hold no stranger slot');
    } finally {
      for (const s of held) await s.destroy();
    }
  });

  test('a stranger gets at most listen.maxUnauthenticatedCommands commands before AUTH, then 421; admitted clients are not counted', async () => {
    const relay = await start(withAuth({ maxUnauthenticatedCommands: 5 }));
    const s = await client(relay.port, '127.0.0.2');
    assert.equal((await s.readReply(3000))?.code, 220);
    const replies: number[] = [];
    for (let i = 0; i < 8 && !s.closed; i++) replies.push((await s.command(i % 2 ? 'RSET' : 'NOOP', 3000))?.code ?? 0);
    assert.deepEqual(replies.slice(0, 5), [250, 250, 250, 250, 250]);
    assert.match(s.replies.at(-1)!.raw, /^421 4\.7\.0 Too many commands without authentication/);
    assert.ok(await s.waitClosed(3000));

    const admitted = await client(relay.port, '127.0.0.1');
    await admitted.readReply(3000);
    for (let i = 0; i < 12; i++) assert.equal((await admitted.command('NOOP', 3000))?.code, 250);
    await admitted.destroy();
  });

  test('a command line trickled one byte every 200 ms is cut off at listen.commandTimeoutSeconds', async () => {
    const relay = await start({ listen: { commandTimeoutSeconds: 1, socketTimeoutSeconds: 30 } });
    const s = await client(relay.port, '127.0.0.1');
    assert.equal((await s.readReply(3000))?.code, 220);
    const started = Date.now();
    const bytes = Buffer.from('NOOP and then some more bytes that never end', 'latin1');
    let sent = 0;
    const timer = setInterval(() => {
      if (sent < bytes.length) void s.write(bytes.subarray(sent, ++sent));
    }, 200);
    try {
      assert.ok(await s.waitClosed(6000), 'the relay closed the connection');
    } finally {
      clearInterval(timer);
    }
    assert.ok(Date.now() - started < 4000, `closed after ${Date.now() - started} ms`);
    assert.match(s.replies.at(-1)?.raw ?? '(none)', /^421 4\.4\.2 Command not completed within 1 s/);
  });

  test('the message itself is bound by dataTimeoutSeconds, not by commandTimeoutSeconds', async () => {
    const relay = await start({
      listen: { commandTimeoutSeconds: 1, dataTimeoutSeconds: 10 },
      delivery: { upstream: { type: 'file', dir: join(dir.path, 'out') } },
    });
    const s = await client(relay.port, '127.0.0.1');
    await s.readReply(3000);
    await s.command('EHLO t', 3000);
    await s.command('MAIL FROM:<a@example.com>', 3000);
    await s.command('RCPT TO:<b@example.net>', 3000);
    assert.equal((await s.command('DATA', 3000))?.code, 354);
    await s.write('From: a@example.com\r\nSubject: slow');
    // A witness session on the same relay leaves a command line unfinished after ours began its line of DATA:
    // once commandTimeoutSeconds has cut the witness off, it has passed for our line too.
    const witness = await client(relay.port, '127.0.0.1');
    assert.equal((await witness.readReply(3000))?.code, 220);
    await witness.write('NOOP');
    assert.ok(await witness.waitClosed(6000), 'the witness was cut off at commandTimeoutSeconds');
    assert.match(witness.replies.at(-1)?.raw ?? '(none)', /^421 4\.4\.2 /);
    await s.write('\r\n\r\nbody\r\n.\r\n');
    assert.equal((await s.readReply(10_000))?.code, 250);
    await s.destroy();
  });

  test('silent TLS handshakes count against listen.maxClientsPerIp and end after listen.tlsHandshakeTimeoutSeconds', async () => {
    const relay = await start(withAuth({ tlsPort: 0, maxClients: 10, maxClientsPerIp: 4, tlsHandshakeTimeoutSeconds: 1, socketTimeoutSeconds: 60 }));
    const tlsPort = relay.relay.ports.tls!;
    const silent = Array.from({ length: 12 }, () => {
      const socket = connect({ port: tlsPort, host: '127.0.0.1', localAddress: '127.0.0.2' });
      socket.on('error', () => {});
      return { socket, closedAt: new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now()))) };
    });
    const started = Date.now();
    try {
      // The relay has judged all twelve once it has turned eight away: four hold their slots.
      await until('eight of the silent connections turned away', () => relay.logs.filter((l) => l.client === '127.0.0.2' && l.level === 40).length >= 8, {
        timeoutMs: 3000,
      });
      // An admitted TLS client still gets in while the stranger's handshakes are pending.
      const ok = await client(tlsPort, '127.0.0.1', {});
      assert.equal((await ok.readReply(3000))?.code, 220);
      await ok.destroy();
      const closed = await Promise.race([Promise.all(silent.map((s) => s.closedAt)), new Promise<null>((r) => setTimeout(() => r(null), 5000))]);
      assert.ok(closed, 'every silent socket was closed by the relay');
      assert.ok(Math.max(...closed) - started < 4000, 'within the handshake timeout');
    } finally {
      for (const s of silent) s.socket.destroy();
    }
  });

  test('AUTH is offered only after STARTTLS (access.allowInsecureAuth: true offers it in clear)', async () => {
    const relay = await start(withAuth());
    const plain = await client(relay.port, '127.0.0.2');
    await plain.readReply(3000);
    const ehlo = await plain.command('EHLO client.example', 3000);
    assert.ok(ehlo && ehlo.code === 250 && ehlo.lines.some((l) => /^STARTTLS$/.test(l)), ehlo?.raw);
    assert.ok(!ehlo.lines.some((l) => /^AUTH\b/.test(l)), `AUTH offered in clear: ${ehlo.raw}`);
    assert.notEqual((await plain.command(plainAuth('exchange', PASSWORD), 3000))?.code, 235);
    await plain.destroy();

    const { c, ehlo: secured } = await startTlsSession(relay.port, '127.0.0.2');
    assert.ok(secured?.lines.includes('AUTH PLAIN LOGIN'), secured?.raw);
    assert.equal((await c.command(plainAuth('exchange', PASSWORD), 3000))?.code, 235);
    await c.destroy();

    const insecure = await start(withAuth({}, { allowInsecureAuth: true }));
    const old = await client(insecure.port, '127.0.0.2');
    await old.readReply(3000);
    assert.ok((await old.command('EHLO client.example', 3000))?.lines.includes('AUTH PLAIN LOGIN'));
    await old.destroy();
  });

  test('failed AUTH is slowed, then the address is shut out with 421 4.7.0 across connections', async () => {
    const relay = await start(withAuth({ maxAuthFailures: 3, authPenaltySeconds: 60 }));
    const { c } = await startTlsSession(relay.port, '127.0.0.2');
    const timed: { code: number; ms: number }[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = Date.now();
      const r = await c.command(plainAuth('exchange', `guess ${i}`), 10_000);
      timed.push({ code: r?.code ?? 0, ms: Date.now() - t0 });
    }
    assert.deepEqual(
      timed.map((t) => t.code),
      [535, 535, 421],
    );
    assert.ok(timed[0]!.ms >= 900 && timed[1]!.ms >= 1900, `the delay grows: ${JSON.stringify(timed)}`);
    assert.match(c.replies.at(-1)!.raw, /^421 4\.7\.0 Too many failed logins from 127\.0\.0\.2/);
    assert.ok(await c.waitClosed(3000), 'closed after listen.maxAuthFailures');

    // A new connection from the same address: even the right password is refused for the window.
    const again = await startTlsSession(relay.port, '127.0.0.2');
    assert.match((await again.c.command(plainAuth('exchange', PASSWORD), 5000))?.raw ?? '(none)', /^421 4\.7\.0 /);
    await again.c.destroy();

    // Another address is not affected.
    const other = await startTlsSession(relay.port, '127.0.0.3');
    assert.equal((await other.c.command(plainAuth('exchange', PASSWORD), 5000))?.code, 235);
    await other.c.destroy();
  });

  test('failed AUTH is logged as one warning per client and window', async () => {
    const lines: { level: number; msg: string; client?: string }[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
        done();
      },
    });
    const keys = tempDir();
    const config = configSchema.parse({
      ...withAuth({ port: 0, maxAuthFailures: 5 }),
      keys: { dir: join(keys.path, 'keys') },
      metrics: { listen: '127.0.0.1:0' },
      rotation: { check: 'off' },
      delivery: { mode: 'sync' },
    });
    const running = await startRelay({ config, path: 'test' }, pino({ level: 'debug' }, sink));
    try {
      for (let round = 0; round < 2; round++) {
        const { c } = await startTlsSession(running.ports.plain, '127.0.0.2');
        for (let i = 0; i < 2 - round; i++) assert.equal((await c.command(plainAuth(i ? 'nobody' : 'exchange', 'wrong'), 15_000))?.code, 535);
        await c.destroy();
      }
      const failures = lines.filter((l) => /AUTH failed/.test(l.msg));
      assert.equal(failures.length, 1, JSON.stringify(failures));
      assert.equal(failures[0]!.level, 40);
      assert.ok(!lines.some((l) => l.msg === 'auth'), 'no info line per failure');
    } finally {
      await running.stop();
      keys.remove();
    }
  });

  test('a client shut out after failed logins is logged once per address and window, however many logins race', async () => {
    const lines: { level: number; msg: string; client?: string; seconds?: number }[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
        done();
      },
    });
    const keys = tempDir();
    const config = configSchema.parse({
      ...withAuth({ port: 0, maxAuthFailures: 2, authPenaltySeconds: 60 }),
      keys: { dir: join(keys.path, 'keys') },
      metrics: { listen: '127.0.0.1:0' },
      rotation: { check: 'off' },
      delivery: { mode: 'sync' },
    });
    const running = await startRelay({ config, path: 'test' }, pino({ level: 'debug' }, sink));
    try {
      // Four sessions guess at once, round after round: one password is checked at a time (the
      // others get 454), and the second failure shuts the address out.
      const codes: (number | undefined)[] = [];
      for (let round = 0; round < 4 && !codes.includes(421); round++) {
        const sessions = await Promise.all([0, 1, 2, 3].map(() => startTlsSession(running.ports.plain, '127.0.0.2')));
        codes.push(...(await Promise.all(sessions.map(({ c }) => c.command(plainAuth('exchange', 'wrong'), 15_000).then((r) => r?.code)))));
        for (const { c } of sessions) await c.destroy();
      }
      assert.ok(codes.includes(421), String(codes));
      assert.equal(codes.filter((code) => code === 535).length, 1, String(codes));
      // Later logins from the same address are refused, and not logged again.
      const later = await startTlsSession(running.ports.plain, '127.0.0.2');
      assert.equal((await later.c.command(plainAuth('exchange', PASSWORD), 5000))?.code, 421);
      await later.c.destroy();
      const shutOut = lines.filter((l) => /shut out/.test(l.msg));
      assert.equal(shutOut.length, 1, JSON.stringify(lines));
      assert.equal(shutOut[0]!.client, '127.0.0.2');
      assert.ok(shutOut[0]!.seconds! > 50 && shutOut[0]!.seconds! <= 60, JSON.stringify(shutOut));
    } finally {
      await running.stop();
      keys.remove();
    }
  });
});

describe('TLS policy', () => {
  const dir = tempDir();
  let relay: TestRelay;
  let tlsPort: number;
  before(async () => {
    relay = await startTestRelay({ listen: { tls: selfSignedCert(dir.path), tlsPort: 0 } });
    tlsPort = relay.relay.ports.tls!;
  });
  after(async () => {
    await relay.close();
    dir.remove();
  });

  /** The negotiated protocol and cipher, or the handshake error. */
  const handshake = (options: ConnectionOptions) =>
    new Promise<{ ok: true; protocol: string | null; cipher: string } | { ok: false; error: string }>((resolve) => {
      const socket = tlsConnect({ port: tlsPort, host: '127.0.0.1', rejectUnauthorized: false, ...options });
      socket.once('secureConnect', () => {
        resolve({ ok: true, protocol: socket.getProtocol(), cipher: socket.getCipher().name });
        socket.destroy();
      });
      socket.once('error', (err) => resolve({ ok: false, error: err.message }));
    });

  test('TLS 1.1 is refused', async () => {
    const r = await handshake({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
    assert.equal(r.ok, false, JSON.stringify(r));
  });

  test('static-RSA and CBC/SHA-1 suites are refused on TLS 1.2', async () => {
    for (const ciphers of ['AES256-SHA', 'AES128-GCM-SHA256', 'ECDHE-RSA-AES128-SHA']) {
      const r = await handshake({ maxVersion: 'TLSv1.2', ciphers });
      assert.equal(r.ok, false, `${ciphers}: ${JSON.stringify(r)}`);
    }
  });

  test('ECDHE-RSA-AES128-GCM-SHA256 on TLS 1.2 and TLS 1.3 are accepted', async () => {
    assert.deepEqual(await handshake({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' }), {
      ok: true,
      protocol: 'TLSv1.2',
      cipher: 'ECDHE-RSA-AES128-GCM-SHA256',
    });
    const r = await handshake({});
    assert.ok(r.ok && r.protocol === 'TLSv1.3', JSON.stringify(r));
  });

  test('STARTTLS follows the same policy', async () => {
    const c = await RawSmtpClient.connect({ port: relay.port, localAddress: '127.0.0.1' });
    await c.readReply(3000);
    await c.command('EHLO t', 3000);
    assert.equal((await c.command('STARTTLS', 3000))?.code, 220);
    assert.equal(await c.startTls({ maxVersion: 'TLSv1.2', ciphers: 'AES256-SHA' }, 3000), false);
    await c.destroy();
  });

  test('listen.tls.minVersion and listen.tls.ciphers override the policy', async () => {
    const strict = await startTestRelay({ listen: { tls: { ...selfSignedCert(dir.path), minVersion: 'TLSv1.3' }, tlsPort: 0 } });
    const loose = await startTestRelay({ listen: { tls: { ...selfSignedCert(dir.path), ciphers: 'ECDHE-RSA-AES256-SHA' }, tlsPort: 0 } });
    try {
      const connectTo = (port: number, options: ConnectionOptions) =>
        new Promise<boolean>((resolve) => {
          const socket = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false, ...options });
          socket.once('secureConnect', () => {
            socket.destroy();
            resolve(true);
          });
          socket.once('error', () => resolve(false));
        });
      assert.equal(await connectTo(strict.relay.ports.tls!, { maxVersion: 'TLSv1.2' }), false);
      assert.equal(await connectTo(loose.relay.ports.tls!, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES256-SHA' }), true);
    } finally {
      await strict.close();
      await loose.close();
    }
  });
});
