// The TLS handshake after STARTTLS has the deadline of listen.tlsHandshakeTimeoutSeconds,
// far below the idle timeout (listen.socketTimeoutSeconds) that alone bounded it before:
// a raw client over loopback that reads 220 to STARTTLS and then stays silent, or stalls
// in the middle of its handshake, is disconnected by the relay, and its connection slot
// (listen.maxClients: 1 here) serves the next client.
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { RawSmtpClient } from '../fuzz/smtp-client.ts';
import { rawSession, type RawSession } from '../helpers/raw-smtp.ts';
import { selfSignedCert, startTestRelay, tempDir, type TestRelay } from '../helpers/relay-harness.ts';

/** Far apart, so a close inside the wait below can only be the handshake deadline. */
const HANDSHAKE_SECONDS = 1;
const SOCKET_TIMEOUT_SECONDS = 60;
/** The longest wait for the relay to hang up: the deadline and a generous margin, well under the idle timeout. */
const WAIT_MS = (HANDSHAKE_SECONDS + 5) * 1000;

/** Greeting, EHLO, STARTTLS answered 220: the client now owes the TLS handshake. */
async function startTlsThenStall(port: number): Promise<RawSession> {
  const session = await greeted(port);
  session.write('EHLO client.test\r\n');
  assert.match((await session.reply(2)) ?? '(none)', /STARTTLS/);
  session.write('STARTTLS\r\n');
  assert.match((await session.reply(3)) ?? '(none)', /^220 /);
  return session;
}

/** Whether the server closed the socket within `ms`. */
async function closedWithin(socket: Socket, closed: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([closed.then(() => true as const), late]);
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
}

/**
 * A new session greeted 220, not turned away with 421: the single slot is free. A few
 * tries, since the relay frees a slot once it has seen the previous client's close.
 */
async function greeted(port: number): Promise<RawSession> {
  let first = '(none)';
  for (let i = 0; i < 20; i++) {
    const session = await rawSession(port);
    first = (await session.reply(1, 3000)) ?? '(none)';
    if (first.startsWith('220 ')) return session;
    session.socket.destroy();
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`the slot was not freed: ${first}`);
}

/** One connection attempt: its first reply. */
async function firstReply(port: number): Promise<string> {
  const session = await rawSession(port);
  try {
    return (await session.reply(1, 3000)) ?? '(none)';
  } finally {
    session.socket.destroy();
  }
}

describe('the STARTTLS handshake deadline', () => {
  const dir = tempDir();
  let relay: TestRelay;

  before(async () => {
    const cert = selfSignedCert(dir.path);
    relay = await startTestRelay({
      listen: { tls: cert, maxClients: 1, tlsHandshakeTimeoutSeconds: HANDSHAKE_SECONDS, socketTimeoutSeconds: SOCKET_TIMEOUT_SECONDS },
    });
  });
  after(async () => {
    await relay.close();
    dir.remove();
  });

  test('silent after 220: disconnected after listen.tlsHandshakeTimeoutSeconds, and the slot is free again', async () => {
    const session = await startTlsThenStall(relay.port);
    assert.match(await firstReply(relay.port), /^421 4\.7\.0 /, 'the stalled client holds the only slot meanwhile');
    assert.ok(await closedWithin(session.socket, session.closed, WAIT_MS), `closed within ${WAIT_MS} ms, not at the ${SOCKET_TIMEOUT_SECONDS} s idle timeout`);
    (await greeted(relay.port)).socket.destroy();
  });

  test('stalled in the middle of the handshake (a ClientHello cut short): disconnected the same way', async () => {
    const session = await startTlsThenStall(relay.port);
    // A TLS record header announcing a 512-octet ClientHello, and only its first octets.
    session.socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, ...Array<number>(16).fill(7)]));
    assert.ok(await closedWithin(session.socket, session.closed, WAIT_MS), `closed within ${WAIT_MS} ms`);
    (await greeted(relay.port)).socket.destroy();
  });

  test('a handshake that completes is not cut off: the session goes on past the deadline', async () => {
    // A second relay in this process, with the same deadline: its cutting off a client that stalls
    // after ours has shaken hands shows that our deadline, armed earlier on the same timers, is past.
    const witness = await startTestRelay({
      listen: { tls: selfSignedCert(dir.path), tlsHandshakeTimeoutSeconds: HANDSHAKE_SECONDS, socketTimeoutSeconds: SOCKET_TIMEOUT_SECONDS },
    });
    let c = await RawSmtpClient.connect({ port: relay.port });
    // Until the relay has seen the previous test's client leave the only slot.
    for (let i = 0; i < 20 && (await c.readReply(5000))?.code !== 220; i++) {
      await c.destroy();
      await new Promise((r) => setTimeout(r, 100));
      c = await RawSmtpClient.connect({ port: relay.port });
    }
    try {
      assert.equal(c.replies[0]?.code, 220);
      assert.equal((await c.command('EHLO client.test', 5000))?.code, 250);
      assert.equal((await c.command('STARTTLS', 5000))?.code, 220);
      assert.ok(await c.startTls());
      const stalled = await startTlsThenStall(witness.port);
      assert.ok(await closedWithin(stalled.socket, stalled.closed, WAIT_MS), 'the witness relay cut off its stalled client');
      assert.equal(c.closed, false, 'still connected once the deadline has passed');
      assert.equal((await c.command('EHLO client.test', 5000))?.code, 250);
      assert.equal((await c.command('NOOP', 5000))?.code, 250);
    } finally {
      await c.destroy();
      await witness.close();
    }
  });
});
