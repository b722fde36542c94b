// SMTP abuse gets the right code and text, and never holds the relay.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { rawSession } from '../helpers/raw-smtp.ts';
import { send, startSink, startTestRelay, type Sink, type TestRelay } from '../helpers/relay-harness.ts';
import { heldConnections } from '../helpers/tcp-state.ts';
import { until } from '../helpers/until.ts';

describe('listener limits', () => {
  let sink: Sink;
  let relay: TestRelay;

  before(async () => {
    sink = await startSink();
    relay = await startTestRelay(
      {
        listen: { maxClientsPerIp: 3, maxRecipients: 2, maxCommandLength: 600, dataTimeoutSeconds: 1, socketTimeoutSeconds: 2 },
        headers: { maxCount: 50, maxHops: 12 },
        delivery: { upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port } },
      },
      (store) => {
        store.generate({ domain: 'example.com', algorithm: 'ed25519', activate: true });
      },
    );
  });
  after(async () => {
    await relay.close();
    await sink.close();
  });

  test('sessions per IP are capped with 421 4.7.0', async () => {
    const sessions = await Promise.all([1, 2, 3].map(() => rawSession(relay.port)));
    for (const s of sessions) assert.match((await s.reply(1))!, /^220 /);
    const fourth = await rawSession(relay.port);
    assert.match((await fourth.reply(1))!, /^421 4\.7\.0 Too many connections/);
    for (const s of sessions) s.socket.destroy();
    await Promise.all(sessions.map((s) => s.closed));
    fourth.socket.destroy();
    await until('the relay closed its side of every session', () => heldConnections({ on: relay.port }) === 0);
    const again = await rawSession(relay.port);
    assert.match((await again.reply(1))!, /^220 /, 'a slot is free again once sessions close');
    again.socket.destroy();
  });

  test('unknown MAIL and RCPT parameters are refused 555 5.5.4', async () => {
    const s = await rawSession(relay.port);
    await s.reply(1);
    s.write('EHLO t\r\nMAIL FROM:<a@example.com> FOO=bar\r\n');
    assert.match((await s.reply(3))!, /^555 5\.5\.4 MAIL FROM parameter FOO/);
    s.write('MAIL FROM:<a@example.com> BODY=8BITMIME\r\nRCPT TO:<b@example.net> NOTIFY=NEVER\r\n');
    assert.match((await s.reply(4))!, /^250 /);
    assert.match((await s.reply(5))!, /^555 5\.5\.4 RCPT TO parameter NOTIFY/);
    s.socket.destroy();
  });

  test('too many recipients and an over-long command line are refused', async () => {
    const s = await rawSession(relay.port);
    await s.reply(1);
    s.write('EHLO t\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<1@example.net>\r\nRCPT TO:<2@example.net>\r\nRCPT TO:<3@example.net>\r\n');
    assert.match((await s.reply(6))!, /^452 /);
    s.write(`NOOP ${'x'.repeat(700)}\r\n`);
    assert.match((await s.reply(7))!, /^421 .*too long/i);
    s.socket.destroy();
  });

  test('a sender that trickles DATA is cut off at listen.dataTimeoutSeconds, and nothing is relayed', async () => {
    const before = sink.received.length;
    const s = await rawSession(relay.port);
    await s.reply(1);
    s.write('EHLO t\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nFrom: a@example.com\r\n');
    assert.match((await s.reply(5))!, /^354/);
    const started = Date.now();
    const timer = setInterval(() => s.socket.writable && s.write('X-Drip: 1\r\n'), 200);
    await Promise.race([s.closed, new Promise((r) => setTimeout(r, 5000))]);
    clearInterval(timer);
    assert.ok(s.socket.destroyed || s.socket.readableEnded, 'connection closed by the relay');
    assert.ok(Date.now() - started < 4000);
    assert.equal(sink.received.length, before);
  });

  test('an idle client is dropped after listen.socketTimeoutSeconds', async () => {
    const s = await rawSession(relay.port);
    await s.reply(1);
    const started = Date.now();
    await Promise.race([s.closed, new Promise((r) => setTimeout(r, 6000))]);
    assert.ok(Date.now() - started < 5000, 'closed within the timeout');
    assert.match(s.replies.at(-1)!, /^421 /);
  });

  test('a message with more header fields than headers.maxCount is refused 552', async () => {
    const raw = 'From: a@example.com\r\nTo: b@example.net\r\n' + Array.from({ length: 60 }, (_, i) => `X-Filler-${i}: y\r\n`).join('') + '\r\nbody\r\n';
    const result = await send({ port: relay.port, from: 'a@example.com', to: ['b@example.net'], raw });
    assert.equal(!result.ok && result.code, 552);
    assert.match(result.response, /Too many header fields: 62/);
  });

  test('a message that has passed more mail systems than headers.maxHops is a loop: 554 5.4.6, and nothing goes on', async () => {
    const received = (n: number) =>
      Array.from({ length: n }, (_, i) => `Received: from hop${i}.example.net by hop${i + 1}.example.net; Thu, 26 Nov 2026 10:00:0${i % 10} +0000\r\n`).join(
        '',
      );
    const message = (n: number, subject: string) => `${received(n)}From: a@example.com\r\nTo: b@example.net\r\nSubject: ${subject}\r\n\r\nbody\r\n`;
    const before = sink.received.length;
    const looping = await send({ port: relay.port, from: 'a@example.com', to: ['b@example.net'], raw: message(13, 'looping') });
    assert.equal(!looping.ok && looping.code, 554, looping.response);
    assert.match(looping.response, /^554 5\.4\.6 Mail loop: the message has passed 13 mail systems \(Received: fields\), at most 12/);
    const atLimit = await send({ port: relay.port, from: 'a@example.com', to: ['b@example.net'], raw: message(12, 'at the limit') });
    assert.equal(atLimit.ok, true, atLimit.response);
    assert.equal(sink.received.length, before + 1, 'only the message at the limit went on');
    assert.match(sink.received.at(-1)!.raw.toString('latin1'), /Subject: at the limit/);
  });
});
