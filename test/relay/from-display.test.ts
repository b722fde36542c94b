// The From: that is signed is the From: that is shown: a client limited to
// scan.example.com must not get mail signed for example.com by writing a From:
// that the relay and a mail reader read differently. Real SMTP sessions.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { verifyWithDkimpy } from '../helpers/independent-verify.ts';
import { dkimFields, send, startSink, startTestRelay, type Sink, type TestRelay } from '../helpers/relay-harness.ts';

const message = (from: string) => Buffer.from(`From: ${from}\r\nTo: <b@example.net>\r\nSubject: scan\r\n\r\nscanned page\r\n`, 'utf8');

/** Each reads as ceo@example.com in Python's email package and in a mail reader. */
const ATTACKS = [
  'ceo@example.com <p@scan.example.com>',
  'ceo@example.com <p@scan.example.com',
  'ceo@example.com>p@scan.example.com',
  'ceo@example.com <p@scan.example.com>, x',
  'ceo@example.com\x00<p@scan.example.com>',
];

describe('a client limited to scan.example.com (clients[].domains)', () => {
  let sink: Sink;
  let relay: TestRelay;
  const config = (headers: Record<string, unknown> = {}) => ({
    clients: [{ networks: ['127.0.0.0/8'], domains: ['scan.example.com'] }],
    headers,
    delivery: { upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port } },
  });
  const withKey = (store: TestRelay['store']) => {
    store.generate({ domain: 'example.com', algorithm: 'rsa', activate: true });
  };

  before(async () => {
    sink = await startSink();
    relay = await startTestRelay(config(), withKey);
  });
  after(async () => {
    await relay.close();
    await sink.close();
  });

  for (const from of ATTACKS) {
    test(`From: ${JSON.stringify(from)} is refused 550 5.6.0 with the reason, and nothing is delivered`, async () => {
      const delivered = sink.received.length;
      const result = await send({ port: relay.port, from: 'p@scan.example.com', to: ['b@example.net'], raw: message(from) });
      assert.equal(!result.ok && result.code, 550, JSON.stringify(result));
      assert.match(result.response, /5\.6\.0 Cannot sign: the From: header is ambiguous: (text after the address|a ">" with no "<"|a control character)/);
      assert.equal(sink.received.length, delivered);
    });
  }

  test('a display name showing an address at example.com is refused 550 5.6.0', async () => {
    const delivered = sink.received.length;
    for (const from of ['"ceo@example.com" <p@scan.example.com>', '=?utf-8?q?ceo=40example.com?= <p@scan.example.com>']) {
      const result = await send({ port: relay.port, from: 'p@scan.example.com', to: ['b@example.net'], raw: message(from) });
      assert.equal(!result.ok && result.code, 550, from);
      assert.match(result.response, /5\.6\.0 Cannot sign: the From: header shows an address at example\.com/);
    }
    assert.equal(sink.received.length, delivered);
  });

  test('"Scanner, 2nd floor" <p@scan.example.com> is still signed d=example.com and delivered', async () => {
    const result = await send({ port: relay.port, from: 'p@scan.example.com', to: ['b@example.net'], raw: message('"Scanner, 2nd floor" <p@scan.example.com>') });
    assert.equal(result.ok, true, JSON.stringify(result));
    const raw = sink.received.at(-1)!.raw;
    assert.match(raw.toString('latin1'), /\r\nFrom: "Scanner, 2nd floor" <p@scan\.example\.com>\r\n/);
    assert.match(dkimFields(raw)[0] ?? '', /d=example\.com/);
    assert.deepEqual(await verifyWithDkimpy(raw, relay.records()), [true]);
  });

  test('headers.displayNameAddress: allow delivers such a display name, but still refuses the ambiguous shapes', async () => {
    const lenient = await startTestRelay(config({ displayNameAddress: 'allow' }), withKey);
    try {
      const named = await send({ port: lenient.port, from: 'p@scan.example.com', to: ['b@example.net'], raw: message('"ceo@example.com" <p@scan.example.com>') });
      assert.equal(named.ok, true, JSON.stringify(named));
      const delivered = sink.received.length;
      const ambiguous = await send({ port: lenient.port, from: 'p@scan.example.com', to: ['b@example.net'], raw: message(ATTACKS[0]!) });
      assert.equal(!ambiguous.ok && ambiguous.code, 550);
      assert.equal(sink.received.length, delivered);
    } finally {
      await lenient.close();
    }
  });
});
