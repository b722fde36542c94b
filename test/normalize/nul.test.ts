// NUL octets in a body (RFC 2045 §2.7-2.8 forbid them in 7bit and 8bit data):
// the part holding them is re-encoded as base64 (nul: 'reencode') or the
// message refused (nul: 'reject').
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normalize } from '../../src/pipeline/normalize/index.ts';
import { assertTransitSafe, crlf, decodeBase64, decodeQP, header, ok, options, parts, refused, split } from './support.ts';

const noNul = (message: Buffer): void => assert.equal(message.indexOf(0), -1, 'a NUL octet is left');

test('a text body with a NUL becomes base64 and decodes to the very same octets', () => {
  const body = Buffer.from('Before the NUL\0after the NUL\r\nNext line.\r\n', 'latin1');
  const head = 'From: a@example.com\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n';
  const { message, changes } = ok(normalize(Buffer.concat([Buffer.from(head), body]), options()));
  assert.deepEqual(changes, ['re-encoded text/plain part as base64 (NUL octets)']);
  const { header: block, body: encoded } = split(message);
  assert.equal(header(block, 'Content-Transfer-Encoding'), 'base64');
  assert.equal(header(block, 'Content-Type'), 'text/plain; charset=us-ascii');
  assert.deepEqual(decodeBase64(encoded.replace(/\r\n$/, '')), body);
  noNul(message);
  assertTransitSafe(message, true);
});

test('a NUL in one child of a multipart re-encodes that child alone', () => {
  const msg = crlf([
    'From: a@example.com',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain',
    '',
    'clean text',
    '--b1',
    'Content-Type: text/csv',
    'Content-Transfer-Encoding: 8bit',
    '',
    'id;name\0;x',
    '1;Gr\u00fc\u00dfe',
    '--b1--',
  ]);
  const { message, changes } = ok(normalize(msg, options()));
  assert.deepEqual(changes, ['re-encoded text/csv part 2 as base64 (NUL octets)']);
  const [first, second] = parts(split(message).body, 'b1');
  assert.equal(first, 'Content-Type: text/plain\r\n\r\nclean text');
  assert.equal(header(split(second!).header, 'Content-Transfer-Encoding'), 'base64');
  // the CRLF before the delimiter belongs to the delimiter, so the part is exactly this
  assert.deepEqual(decodeBase64(split(second!).body), Buffer.from('id;name\0;x\r\n1;Gr\u00fc\u00dfe'));
  noNul(message);
  assertTransitSafe(message, false);
});

test('a NUL in a quoted-printable part is written =00; in a base64 part it is dropped as non-alphabet', () => {
  const qp = crlf(['From: a@example.com', 'MIME-Version: 1.0', 'Content-Type: text/plain', 'Content-Transfer-Encoding: quoted-printable', '', 'a\0b=3D']);
  const fixed = ok(normalize(qp, options()));
  assert.deepEqual(fixed.changes, ['re-encoded quoted-printable text/plain part (NUL octets)']);
  assert.deepEqual(decodeQP(split(fixed.message).body), Buffer.from('a\0b=\r\n', 'latin1'));
  noNul(fixed.message);

  const b64 = crlf(['From: a@example.com', 'MIME-Version: 1.0', 'Content-Type: application/pdf', 'Content-Transfer-Encoding: base64', '', 'JVBE\0Ri0x']);
  const rewrapped = ok(normalize(b64, options()));
  assert.deepEqual(decodeBase64(split(rewrapped.message).body.replace(/\r\n$/, '')), Buffer.from('JVBERi0x', 'base64'));
  noNul(rewrapped.message);
});

test("nul: 'reject' refuses 554 5.6.0 and names the part", () => {
  const msg = crlf(['From: a@example.com', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary=b', '', '--b', '', 'x\0y', '--b--']);
  const { code, text } = refused(normalize(msg, options({ nul: 'reject' })));
  assert.equal(code, 554);
  assert.match(text, /^5\.6\.0 The text\/plain part 1 holds NUL octets, which RFC 2045 forbids/);
  // a message without NUL is untouched either way
  const clean = crlf(['From: a@example.com', '', 'no nul here']);
  assert.equal(ok(normalize(clean, options({ nul: 'reject' }))).message, clean);
});
