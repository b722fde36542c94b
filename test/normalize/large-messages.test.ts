// Large messages: the common case comes back as the same Buffer, and 25 MB of
// long 8-bit lines is re-encoded and decodes back. That the work stays linear
// (bodies and hostile headers) is measured, by CPU time, in `npm run bench`:
// bench/growth.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normalize } from '../../src/pipeline/normalize/index.ts';
import { assertTransitSafe, decodeQP, ok, options, split } from './support.ts';

const HEAD =
  'From: a@example.com\r\nDate: Sun, 22 Nov 2026 09:00:00 +0000\r\nMessage-ID: <p@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n';

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
  for (let hard = 0; hard < 10;) {
    const end = encoded.indexOf('\r\n', at);
    if (encoded[end - 1] !== '=') hard++;
    at = end + 2;
  }
  assert.equal(decodeQP(encoded.slice(0, at)).toString(), line.repeat(10));
});
