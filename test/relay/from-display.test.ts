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

  test('a display name with a character that looks like "." standing in for one is refused 550 5.6.0', async () => {
    const delivered = sink.received.length;
    // U+00B7 middle dot, U+30FB katakana middle dot, U+FF65 its half-width form, U+2219 bullet operator, U+0589 Armenian full stop
    for (const dot of ['\u00b7', '\u30fb', '\uff65', '\u2219', '\u0589']) {
      const from = `"ceo@example${dot}com" <p@scan.example.com>`;
      const result = await send({ port: relay.port, from: 'p@scan.example.com', to: ['b@example.net'], raw: message(from) });
      assert.equal(!result.ok && result.code, 550, from);
      assert.match(result.response, /5\.6\.0 Cannot sign: the From: header shows an address at example\.com/, from);
    }
    assert.equal(sink.received.length, delivered);
  });

  test('an address whose domain holds a look-alike dot is refused 550 5.6.0, naming the character', async () => {
    const delivered = sink.received.length;
    const result = await send({ port: relay.port, from: 'p@scan.example.com', to: ['b@example.net'], raw: message('Scanner <p@scan\u00b7example.com>') });
    assert.equal(!result.ok && result.code, 550);
    assert.match(result.response, /5\.6\.0 Cannot sign: the From: header is ambiguous: a character that looks like "\." \(U\+00B7\) in the domain/);
    assert.equal(sink.received.length, delivered);
  });

  test('a raw Shift_JIS display name (8-bit, not UTF-8) is refused 550 5.6.0', async () => {
    const delivered = sink.received.length;
    // 山田 in Shift_JIS: a reader guessing another charset shows other text than the one signed
    const raw = Buffer.concat([
      Buffer.from('From: '),
      Buffer.from([0x8e, 0x52, 0x93, 0x63]),
      Buffer.from(' <p@scan.example.com>\r\nTo: <b@example.net>\r\nSubject: scan\r\n\r\nscanned page\r\n'),
    ]);
    const result = await send({ port: relay.port, from: 'p@scan.example.com', to: ['b@example.net'], raw });
    assert.equal(!result.ok && result.code, 550, JSON.stringify(result));
    assert.match(
      result.response,
      /5\.6\.0 Cannot sign: the From: header holds 8-bit octets that are not UTF-8 \(RFC 6532\); send the display name as an RFC 2047 encoded-word/,
    );
    assert.equal(sink.received.length, delivered);
    // The same name in UTF-8 is signed and delivered.
    const utf8 = await send({ port: relay.port, from: 'p@scan.example.com', to: ['b@example.net'], raw: message('山田 <p@scan.example.com>') });
    assert.equal(utf8.ok, true, JSON.stringify(utf8));
  });

  test('"Scanner, 2nd floor" <p@scan.example.com> is still signed d=example.com and delivered', async () => {
    const result = await send({
      port: relay.port,
      from: 'p@scan.example.com',
      to: ['b@example.net'],
      raw: message('"Scanner, 2nd floor" <p@scan.example.com>'),
    });
    assert.equal(result.ok, true, JSON.stringify(result));
    const raw = sink.received.at(-1)!.raw;
    assert.match(raw.toString('latin1'), /\r\nFrom: "Scanner, 2nd floor" <p@scan\.example\.com>\r\n/);
    assert.match(dkimFields(raw)[0] ?? '', /d=example\.com/);
    assert.deepEqual(await verifyWithDkimpy(raw, relay.records()), [true]);
  });

  test('headers.displayNameAddress: allow delivers such a display name, but still refuses the ambiguous shapes', async () => {
    const lenient = await startTestRelay(config({ displayNameAddress: 'allow' }), withKey);
    try {
      const named = await send({
        port: lenient.port,
        from: 'p@scan.example.com',
        to: ['b@example.net'],
        raw: message('"ceo@example.com" <p@scan.example.com>'),
      });
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
