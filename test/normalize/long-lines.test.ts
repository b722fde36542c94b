// Step 3: body lines over 998 octets — the affected MIME leaf is re-encoded
// (longLines: 'reencode') or the message refused (longLines: 'reject').
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { normalize } from '../../src/pipeline/normalize/index.ts';
import { assertTransitSafe, crlf, decodeBase64, decodeQP, header, ok, options, parts, refused, split } from './support.ts';

const LONG = 'Lorem ipsum dolor sit amet, '.repeat(43); // 1204 octets

test('a message without MIME headers becomes one quoted-printable text/plain part', () => {
  const body = `short line\r\n${LONG}\r\nend\r\n`;
  const msg = Buffer.from(`From: a@example.com\r\nSubject: s\r\n\r\n${body}`);
  const { message, changes } = ok(normalize(msg, options()));
  assert.deepEqual(changes, [
    're-encoded text/plain part as quoted-printable (line of 1204 octets)',
    'added MIME-Version: 1.0',
    'added Content-Type: text/plain; charset=utf-8',
  ]);
  assertTransitSafe(message, true);
  const { header: block, body: encoded } = split(message);
  assert.equal(
    block,
    'From: a@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n',
  );
  assert.deepEqual(decodeQP(encoded), Buffer.from(body));
});

test('text that is not UTF-8 is labelled unknown-8bit', () => {
  const body = Buffer.concat([Buffer.from('Gr'), Buffer.from([0xfc]), Buffer.from('\xdfe ' + LONG + '\r\n', 'latin1')]);
  const msg = Buffer.concat([Buffer.from('From: a@example.com\r\n\r\n'), body]);
  const { message } = ok(normalize(msg, options()));
  const { header: block, body: encoded } = split(message);
  assert.equal(header(block, 'Content-Type'), 'text/plain; charset=unknown-8bit');
  assert.deepEqual(decodeQP(encoded), body);
});

test('a declared non-text part with a long line becomes base64 and decodes to the same octets', () => {
  const data = Buffer.concat([Buffer.from('x'.repeat(3000)), Buffer.from('\r\nmore\r\n')]);
  const msg = Buffer.concat([
    Buffer.from('From: a@example.com\r\nMIME-Version: 1.0\r\nContent-Type: application/json\r\nContent-Transfer-Encoding: 7bit\r\n\r\n'),
    data,
  ]);
  const { message, changes } = ok(normalize(msg, options()));
  assert.deepEqual(changes, ['re-encoded application/json part as base64 (line of 3000 octets)']);
  const { header: block, body } = split(message);
  assert.equal(header(block, 'Content-Transfer-Encoding'), 'base64');
  assert.equal(block.split('\r\n').filter((l) => /^content-transfer-encoding/i.test(l)).length, 1, 'replaced in place, not added');
  assert.deepEqual(decodeBase64(body.replace(/\r\n$/, '')), data);
  assertTransitSafe(message, true);
});

test('a base64 part written as one long line is re-wrapped at 76', () => {
  const data = randomBytes(5000);
  const msg = crlf([
    'From: a@example.com',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="=_b"',
    '',
    '--=_b',
    'Content-Type: text/plain',
    '',
    'see attachment',
    '--=_b',
    'Content-Type: image/png',
    'Content-Transfer-Encoding: base64',
    '',
    data.toString('base64'),
    '--=_b--',
  ]);
  const { message, changes } = ok(normalize(msg, options()));
  assert.deepEqual(changes, [`re-wrapped base64 image/png part 2 at 76 octets (line of ${data.toString('base64').length} octets)`]);
  const [text, image] = parts(split(message).body, '=_b');
  assert.equal(text, 'Content-Type: text/plain\r\n\r\nsee attachment');
  assert.deepEqual(decodeBase64(split(image!).body), data);
  assertTransitSafe(message, true);
});

test('a quoted-printable part with long lines is decoded and re-encoded', () => {
  const original = Buffer.from(`caf\u00e9 = ${LONG}tail \r\nnext\r\n`);
  // a sloppy encoder: =XX escapes but no soft breaks
  const sloppy = original
    .toString('latin1')
    .replace(/[=\x80-\xff]/g, (c) => '=' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'))
    .replace(/ \r\n/g, '=20\r\n');
  const msg = Buffer.from(
    `From: a@example.com\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n${sloppy}`,
    'latin1',
  );
  const { message, changes } = ok(normalize(msg, options()));
  assert.match(changes[0]!, /^re-encoded quoted-printable text\/plain part \(line of \d+ octets\)$/);
  assert.deepEqual(decodeQP(split(message).body), original);
  assertTransitSafe(message, true);
});

test("longLines: 'reject' refuses 554 5.6.0 with the line length", () => {
  const msg = Buffer.from(`From: a@example.com\r\n\r\n${LONG}\r\n`);
  const { code, text } = refused(normalize(msg, options({ longLines: 'reject' })));
  assert.equal(code, 554);
  assert.match(text, /^5\.6\.0 Line of 1204 octets in the body exceeds the 998 octets of RFC 5322; /);
  // a line of exactly 998 octets is fine either way
  const edge = Buffer.from(`From: a@example.com\r\n\r\n${'y'.repeat(998)}\r\n`);
  assert.equal(ok(normalize(edge, options({ longLines: 'reject' }))).message, edge);
  const over = Buffer.from(`From: a@example.com\r\n\r\n${'y'.repeat(999)}\r\n`);
  assert.match(refused(normalize(over, options({ longLines: 'reject' }))).text, /Line of 999 octets/);
});

test('a 2 MB base64 attachment beside a long-line text part stays byte for byte', () => {
  const attachment = randomBytes(2 * 1024 * 1024)
    .toString('base64')
    .replace(/.{76}/g, '$&\r\n')
    .replace(/\r\n$/, '');
  const msg = crlf([
    'From: a@example.com',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary=XYZ',
    '',
    'This is a multi-part message in MIME format.',
    '--XYZ',
    'Content-Type: text/html; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    `<p>${LONG}</p>`,
    '--XYZ',
    'Content-Type: application/pdf; name="r.pdf"',
    'Content-Transfer-Encoding: base64',
    '',
    attachment,
    '--XYZ--',
    'epilogue',
  ]);
  const { message, changes } = ok(normalize(msg, options()));
  assert.deepEqual(changes, ['re-encoded text/html part 1 as quoted-printable (line of 1211 octets)']);
  const text = message.toString('latin1');
  const [html, pdf] = parts(split(text).body, 'XYZ');
  assert.equal(pdf, `Content-Type: application/pdf; name="r.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n${attachment}`);
  assert.equal(header(split(html!).header, 'Content-Transfer-Encoding'), 'quoted-printable');
  assert.equal(decodeQP(split(html!).body).toString(), `<p>${LONG}</p>`);
  assert.ok(text.startsWith(split(msg).header + '\r\nThis is a multi-part message in MIME format.\r\n--XYZ\r\n'));
  assert.ok(text.endsWith('\r\n--XYZ--\r\nepilogue\r\n'));
  assertTransitSafe(message, true);
});
