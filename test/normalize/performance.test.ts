// The common case costs a scan; the worst cases stay linear.
import { replyText } from '../../src/smtp/reply.ts';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normalize } from '../../src/pipeline/normalize/index.ts';
import { growth, LINEAR_AT_8X } from '../helpers/growth.ts';
import { assertTransitSafe, decodeQP, ok, options, split } from './support.ts';

const HEAD = 'From: a@example.com\r\nDate: Sun, 22 Nov 2026 09:00:00 +0000\r\nMessage-ID: <p@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n';

test('a 25 MB message that needs nothing comes back as the same Buffer', () => {
  const msg = Buffer.from(HEAD + 'An ordinary line of text, well within the limits: äöü.\r\n'.repeat(25e6 / 58));
  const result = normalize(msg, options({ addDate: true, addMessageId: true, eightBitMime: true }));
  assert.equal(ok(result).message, msg);
});

test('a 25 MB body of long 8-bit lines is line-wrapped (quoted-printable) and decodes back', () => {
  const line = 'Grüße aus Köln, das ist ein Test. '.repeat(60) + '\r\n';
  const body = Buffer.from(line.repeat(Math.ceil(25e6 / Buffer.byteLength(line))));
  const msg = Buffer.concat([Buffer.from(HEAD), body]);
  const { message, changes } = ok(normalize(msg, options({ eightBitMime: false })));
  assert.deepEqual(changes, ['re-encoded text/plain part as quoted-printable (8-bit data, line of 2220 octets)']);
  assertTransitSafe(message, true);
  // decode the first ten original lines' worth (they all are the same line)
  const encoded = split(message).body;
  let at = 0;
  for (let hard = 0; hard < 10; ) {
    const end = encoded.indexOf('\r\n', at);
    if (encoded[end - 1] !== '=') hard++;
    at = end + 2;
  }
  assert.equal(decodeQP(encoded.slice(0, at)).toString(), line.repeat(10));
});

test('re-encoding a body grows linearly with its size', () => {
  const line = 'Grüße aus Köln, das ist ein Test. '.repeat(60) + '\r\n';
  const ratio = growth(
    (scale) => Buffer.concat([Buffer.from(HEAD), Buffer.from(line.repeat(1_000 * scale))]),
    (msg) => void ok(normalize(msg, options({ eightBitMime: false }))),
  );
  assert.ok(ratio < LINEAR_AT_8X, `8× the body took ${ratio.toFixed(1)}× as long`);
});

test('hostile headers stay linear: huge unfoldable, whitespace-heavy and comment-heavy fields', () => {
  const cases: ((n: number) => string)[] = [
    (n) => `X-A: ${'a '.repeat(500_000 * n)}`,
    (n) => `X-B: ${' '.repeat(900)}b${'\t'.repeat(900)}c ${'x'.repeat(990)} `.repeat(200 * n),
    (n) => `To: ${'('.repeat(200_000 * n)}ü`,
    (n) => `To: ${'"ä", '.repeat(50_000 * n)}<a@example.com>`,
    (n) => `Subject: ${'=?ä '.repeat(100_000 * n)}`,
    (n) => `Content-Type: text/plain; ${'a=ü; '.repeat(30_000 * n)}`,
  ];
  for (const field of cases) {
    const make = (n: number) => Buffer.from(`From: a@example.com\r\n${field(n)}\r\n\r\nbody\r\n`, 'latin1');
    const run = (msg: Buffer) => {
      const result = normalize(msg, options({ eightBitMime: false }));
      if (result.ok) assertTransitSafe(result.message, true);
      else assert.equal(result.reply.code, 554);
    };
    const ratio = growth(make, run);
    assert.ok(ratio < LINEAR_AT_8X, `${field(1).slice(0, 20)}: 8× the field took ${ratio.toFixed(1)}× as long`);
  }
});
