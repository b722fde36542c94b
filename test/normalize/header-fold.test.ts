// Step 2: header lines over 998 octets are refolded at whitespace, or refused.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normalize } from '../../src/pipeline/normalize/index.ts';
import { assertTransitSafe, crlf, header, ok, options, refused, split } from './support.ts';

const longSubject = 'Subject: ' + Array.from({ length: 300 }, (_, i) => `w${i}`).join(' ');

test('a long Subject: is refolded before whitespace runs; unfolding gives the same value', () => {
  const msg = crlf(['From: a@example.com', longSubject, 'To: b@example.org', '', 'body']);
  const { message, changes } = ok(normalize(msg, options()));
  assert.deepEqual(changes, [`refolded Subject: (${longSubject.length} octets)`]);
  assertTransitSafe(message, false);
  const { header: block, body } = split(message);
  const lines = block.split('\r\n');
  // every physical line of the refolded field is within 78 here, since whitespace allows it
  const subjectLines = lines.slice(1, lines.indexOf('To: b@example.org'));
  for (const l of subjectLines) assert.ok(l.length <= 78, l);
  assert.equal(subjectLines.join(''), longSubject, 'a fold only inserts CRLF');
  assert.ok(subjectLines.slice(1).every((l) => l.startsWith(' ')));
  assert.equal(lines[0], 'From: a@example.com');
  assert.equal(body, 'body\r\n');
});

test('a line that can only be folded far apart keeps lines under 998 and never folds right after the colon', () => {
  const word = 'x'.repeat(600);
  const field = `X-Long:  ${word} ${word} ${word}`;
  const { message } = ok(normalize(crlf(['From: a@example.com', field, '', 'b']), options()));
  const lines = split(message).header.split('\r\n').slice(1, 4);
  assert.deepEqual(lines, [`X-Long:  ${word}`, ` ${word}`, ` ${word}`]);
});

test('a long line without whitespace is refused 554 5.6.0 naming the header', () => {
  const msg = crlf(['From: a@example.com', `X-Token: ${'a'.repeat(1200)}`, '', 'body']);
  const { code, text } = refused(normalize(msg, options()));
  assert.equal(code, 554);
  assert.match(text, /^5\.6\.0 The X-Token: header has a line of 1209 octets/);
});

test('with refoldHeaders off a long header line is refused the same way', () => {
  const msg = crlf(['From: a@example.com', longSubject, '', 'body']);
  const { code, text } = refused(normalize(msg, options({ refoldHeaders: false })));
  assert.equal(code, 554);
  assert.match(text, /^5\.6\.0 The Subject: header has a line of \d+ octets; RFC 5322 allows 998/);
});

test('a long header inside a MIME part is refolded too, and says where', () => {
  const name = Array.from({ length: 300 }, (_, i) => `n${i}`).join(' ');
  const msg = crlf([
    'From: a@example.com',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary=b',
    '',
    '--b',
    'Content-Type: text/plain',
    '',
    'one',
    '--b',
    `Content-Disposition: attachment; filename="${name}"`,
    '',
    'two',
    '--b--',
  ]);
  const { message, changes } = ok(normalize(msg, options()));
  assert.equal(changes.length, 1);
  assert.match(changes[0]!, /^refolded Content-Disposition: in part 2 \(\d+ octets\)$/);
  assertTransitSafe(message, false);
  assert.equal(header(message.toString('latin1').split('--b')[2]!, 'Content-Disposition'), `attachment; filename="${name}"`);
});
