// The common case costs a scan; the worst cases stay linear.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normalize } from '../../src/pipeline/normalize/index.ts';
import { assertTransitSafe, decodeQP, ok, options, split } from './support.ts';

const HEAD = 'From: a@example.com\r\nDate: Sun, 22 Nov 2026 09:00:00 +0000\r\nMessage-ID: <p@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n';
const ms = (f: () => void): number => {
  const t = performance.now();
  f();
  return performance.now() - t;
};

test('a 25 MB message that needs nothing comes back as the same Buffer after a scan', () => {
  const msg = Buffer.from(HEAD + 'An ordinary line of text, well within the limits: äöü.\r\n'.repeat(25e6 / 58));
  let result;
  const took = ms(() => (result = normalize(msg, options({ addDate: true, addMessageId: true, eightBitMime: true }))));
  assert.equal(ok(result!).message, msg);
  assert.ok(took < 500, `${took} ms`);
});

test('a 25 MB body of long 8-bit lines is line-wrapped (quoted-printable) in under ~2 s', (t) => {
  const line = 'Grüße aus Köln, das ist ein Test. '.repeat(60) + '\r\n';
  const body = Buffer.from(line.repeat(Math.ceil(25e6 / Buffer.byteLength(line))));
  const msg = Buffer.concat([Buffer.from(HEAD), body]);
  let result;
  const took = ms(() => (result = normalize(msg, options({ eightBitMime: false }))));
  const { message, changes } = ok(result!);
  assert.deepEqual(changes, ['re-encoded text/plain part as quoted-printable (8-bit data, line of 2220 octets)']);
  t.diagnostic(`normalize: ${Math.round(took)} ms`);
  assert.ok(took < 2000, `${took} ms`);
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

test('hostile headers stay linear: huge unfoldable, whitespace-heavy and comment-heavy fields', () => {
  const cases = [
    `X-A: ${'a '.repeat(500_000)}`,
    `X-B: ${' '.repeat(900)}b${'\t'.repeat(900)}c ${'x'.repeat(990)} `.repeat(200),
    `To: ${'('.repeat(200_000)}ü`,
    `To: ${'"ä", '.repeat(50_000)}<a@example.com>`,
    `Subject: ${'=?ä '.repeat(100_000)}`,
    `Content-Type: text/plain; ${'a=ü; '.repeat(30_000)}`,
  ];
  for (const field of cases) {
    const msg = Buffer.from(`From: a@example.com\r\n${field}\r\n\r\nbody\r\n`, 'latin1');
    let result;
    const took = ms(() => (result = normalize(msg, options({ eightBitMime: false }))));
    assert.ok(took < 1500, `${field.slice(0, 20)}: ${took} ms`);
    if (result!.ok) assertTransitSafe(result!.message, true);
    else assert.equal(result!.code, 554);
  }
});
