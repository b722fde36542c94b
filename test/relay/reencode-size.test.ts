// A message made 7-bit for an upstream without 8BITMIME grows: quoted-
// printable writes each 8-bit octet as three. It must stay within
// listen.maxMessageSize, the size the relay promised to take (and the
// upstream to carry): text that quoted-printable would triple goes base64,
// and what is still too large once encoded is refused 552 5.3.4. Real SMTP.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { send, startSink, startTestRelay, type Sink, type TestRelay } from '../helpers/relay-harness.ts';

const MAX = 1024 * 1024;
/** DKIM-Signature and Received: fields the relay adds after the check. */
const ADDED = 4096;

function message(contentType: string, body: Buffer): Buffer {
  const head = `From: a@example.com\r\nTo: b@example.net\r\nSubject: size\r\nMIME-Version: 1.0\r\nContent-Type: ${contentType}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n`;
  return Buffer.concat([Buffer.from(head), body]);
}

describe('re-encoding for a 7-bit upstream stays within listen.maxMessageSize', () => {
  let sink: Sink;
  let relay: TestRelay;

  before(async () => {
    sink = await startSink();
    relay = await startTestRelay(
      {
        listen: { maxMessageSize: MAX },
        delivery: { upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port, eightBitMime: false } },
      },
      (store) => void store.generate({ domain: 'example.com', algorithm: 'ed25519', activate: true }),
    );
  });
  after(async () => {
    await relay.close();
    await sink.close();
  });

  test('700 KB of Cyrillic text (3× as quoted-printable) goes base64 and arrives within the limit', async () => {
    const line = `${'Привет, как дела? '.repeat(3)}\r\n`;
    const body = Buffer.from(line.repeat(Math.floor(700_000 / Buffer.byteLength(line))));
    const result = await send({ port: relay.port, from: 'a@example.com', to: ['b@example.net'], raw: message('text/plain; charset=utf-8', body) });
    assert.equal(result.ok, true, JSON.stringify(result));
    const raw = sink.received.at(-1)!.raw;
    assert.match(raw.toString('latin1'), /\r\nContent-Transfer-Encoding: base64\r\n/);
    assert.ok(raw.length <= MAX + ADDED, `${raw.length} octets delivered, the relay takes at most ${MAX}`);
  });

  test('Latin text with a few accents stays quoted-printable', async () => {
    const line = 'Grüße aus Köln, das ist ein ganz normaler deutscher Satz mit Umlauten.\r\n';
    const result = await send({
      port: relay.port,
      from: 'a@example.com',
      to: ['b@example.net'],
      raw: message('text/plain; charset=utf-8', Buffer.from(line.repeat(100))),
    });
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.match(sink.received.at(-1)!.raw.toString('latin1'), /\r\nContent-Transfer-Encoding: quoted-printable\r\n/);
  });

  test('900 KB of 8-bit data, 1.2 MB as base64, is refused 552 5.3.4 with the reason', async () => {
    const delivered = sink.received.length;
    const body = Buffer.concat([randomBytes(900_000).map((o) => (o === 0x0d || o === 0x0a || o === 0 ? 0x80 : o)), Buffer.from('\r\n')]);
    const result = await send({ port: relay.port, from: 'a@example.com', to: ['b@example.net'], raw: message('application/octet-stream', body) });
    assert.equal(!result.ok && result.code, 552, JSON.stringify(result));
    assert.match(result.response, /5\.3\.4 Message exceeds the maximum size of 1048576 octets once re-encoded for the upstream \(\d{7} octets\)/);
    assert.equal(sink.received.length, delivered);
  });
});
