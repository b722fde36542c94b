// Step 4: for an upstream without 8BITMIME, 8-bit content is re-encoded to
// 7-bit — bodies, nested parts, enclosed messages and header text.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normalize } from '../../src/pipeline/normalize/index.ts';
import { assertTransitSafe, crlf, decodeBase64, decodeQP, decodeWords, header, ok, options, parts, refused, split } from './support.ts';

const SEVEN = options({ eightBitMime: false });

test('with 8BITMIME upstream an 8-bit message is left alone (the same Buffer)', () => {
  const msg = crlf(['From: "Jörg" <j@example.com>', 'Subject: Grüße', '', 'Hällo']);
  const result = ok(normalize(msg, options({ eightBitMime: true })));
  assert.equal(result.message, msg);
  assert.deepEqual(result.changes, []);
});

test('an 8bit text part becomes quoted-printable; a binary part becomes base64', () => {
  const bin = Buffer.from([0x00, 0xff, 0x80, 0x41, 0x0d, 0x0a, 0xc3]);
  const msg = Buffer.concat([
    crlf([
      'From: a@example.com',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary=b',
      '',
      'preamble',
      '--b',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      'Grüße aus Köln',
      '--b',
      'Content-Type: application/octet-stream',
      'Content-Transfer-Encoding: binary',
      '',
    ]),
    bin,
    crlf(['', '--b', 'Content-Type: text/plain', '', 'plain ascii part', '--b--', 'epilogue']),
  ]);
  const { message, changes } = ok(normalize(msg, SEVEN));
  assert.deepEqual(changes, [
    're-encoded text/plain part 1 as quoted-printable (8-bit data)',
    're-encoded application/octet-stream part 2 as base64 (8-bit data, NUL octets)',
  ]);
  assertTransitSafe(message, true);
  const [text, binary, plain] = parts(split(message).body, 'b');
  assert.equal(header(split(text!).header, 'Content-Transfer-Encoding'), 'quoted-printable');
  assert.equal(decodeQP(split(text!).body).toString(), 'Grüße aus Köln');
  assert.equal(header(split(binary!).header, 'Content-Transfer-Encoding'), 'base64');
  assert.deepEqual(decodeBase64(split(binary!).body), bin);
  assert.equal(plain, 'Content-Type: text/plain\r\n\r\nplain ascii part', 'untouched part');
  assert.ok(message.toString('latin1').endsWith('--b--\r\nepilogue\r\n'));
});

test('nested multipart inside message/rfc822: re-encoded inside, and the enclosing part declares 7bit', () => {
  const inner = [
    'From: "Zoë" <z@example.org>',
    'Subject: Ünïcode',
    'MIME-Version: 1.0',
    'Content-Type: multipart/alternative; boundary="in"',
    '',
    '--in',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Ça va?',
    '--in',
    'Content-Type: text/html; charset=utf-8',
    '',
    '<p>Ça va?</p>',
    '--in--',
  ];
  const msg = crlf([
    'From: a@example.com',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="out"',
    '',
    '--out',
    'Content-Type: text/plain',
    '',
    'forwarded:',
    '--out',
    'Content-Type: message/rfc822',
    'Content-Transfer-Encoding: 8bit',
    '',
    ...inner,
    '--out--',
  ]);
  const { message, changes } = ok(normalize(msg, SEVEN));
  assert.deepEqual(changes, [
    'encoded 8-bit display names in From: in part 2 as RFC 2047 encoded-words',
    'encoded 8-bit text in Subject: in part 2 as RFC 2047 encoded-words',
    're-encoded text/plain part 2.1 as quoted-printable (8-bit data)',
    're-encoded text/html part 2.2 as quoted-printable (8-bit data)',
    'set Content-Transfer-Encoding: 7bit on the message/rfc822 part 2',
  ]);
  assertTransitSafe(message, true);
  const [first, forwarded] = parts(split(message).body, 'out');
  assert.equal(first, 'Content-Type: text/plain\r\n\r\nforwarded:');
  assert.equal(header(split(forwarded!).header, 'Content-Transfer-Encoding'), '7bit');
  const enclosed = forwarded!.slice(forwarded!.indexOf('\r\n\r\n') + 4);
  const { header: innerHeader, body: innerBody } = split(enclosed);
  assert.equal(decodeWords(header(innerHeader, 'Subject')!).toString(), 'Ünïcode');
  assert.equal(decodeWords(header(innerHeader, 'From')!).toString(), 'Zoë <z@example.org>');
  const [plain, html] = parts(innerBody, 'in');
  assert.equal(decodeQP(split(plain!).body).toString(), 'Ça va?');
  assert.equal(decodeQP(split(html!).body).toString(), '<p>Ça va?</p>');
});

test('header text: Subject, display names, comments and keywords become encoded-words that decode back', () => {
  const msg = crlf([
    'From: "Jörg Müller" <joerg@example.com>',
    'To: Ännchen Groß <a@example.de>, plain@example.org (Büro Köln), "Ops, Team" <ops@example.org>',
    'Cc: Grüppe: x@example.org, Ölaf <o@example.org>;',
    'Subject: Re: =?utf-8?q?Caf=C3=A9?= Grüße aus Köln – 2026',
    'Keywords: grün, blue, "rot, dunkel"',
    'X-Custom: Ærø',
    '',
    'body',
  ]);
  const { message, changes } = ok(normalize(msg, SEVEN));
  assert.equal(changes.length, 6);
  assertTransitSafe(message, true);
  const block = split(message).header;
  for (const line of block.split('\r\n')) assert.ok(line.length <= 78, line);
  const decoded = (name: string): string => decodeWords(header(block, name)!).toString();
  assert.equal(decoded('From'), 'Jörg Müller <joerg@example.com>');
  assert.equal(decoded('To'), 'Ännchen Groß <a@example.de>, plain@example.org (Büro Köln), "Ops, Team" <ops@example.org>');
  assert.equal(decoded('Cc'), 'Grüppe: x@example.org, Ölaf <o@example.org>;');
  assert.equal(decoded('Subject'), 'Re: Café Grüße aus Köln – 2026');
  assert.equal(decoded('Keywords'), 'grün, blue, "rot, dunkel"');
  assert.equal(decoded('X-Custom'), 'Ærø');
  // the untouched quoted display name keeps its bytes
  assert.match(header(block, 'To')!, /, "Ops, Team" <ops@example\.org>$/);
});

test('an 8-bit address cannot be made 7-bit: 554 5.6.7 asks for SMTPUTF8', () => {
  for (const field of ['From: jörg@example.com', 'To: "J" <j@exämple.com>', 'Reply-To: Grüße <grüße@example.com>']) {
    const { code, text } = refused(normalize(crlf([field, '', 'x']), SEVEN));
    assert.equal(code, 554);
    assert.match(text, /^5\.6\.7 An address in the (From|To|Reply-To): header holds 8-bit octets; it needs an SMTPUTF8 upstream$/);
  }
  assert.equal(refused(normalize(crlf(['From: a@example.com', 'Message-ID: <ü@example.com>', '', 'x']), SEVEN)).code, 554);
});

test('an 8-bit attachment filename becomes an RFC 2231 value', () => {
  const msg = crlf([
    'From: a@example.com',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary=b',
    '',
    '--b',
    'Content-Type: application/pdf; name="Übersicht März.pdf"',
    'Content-Disposition: attachment; filename="Übersicht März.pdf"; size=3',
    'Content-Transfer-Encoding: base64',
    '',
    'QUJD',
    '--b--',
  ]);
  const { message, changes } = ok(normalize(msg, SEVEN));
  assert.deepEqual(changes, [
    'encoded 8-bit parameters in Content-Type: in part 1 as RFC 2231 values',
    'encoded 8-bit parameters in Content-Disposition: in part 1 as RFC 2231 values',
  ]);
  const [part] = parts(split(message).body, 'b');
  assert.equal(header(split(part!).header, 'Content-Disposition'), "attachment; filename*=utf-8''%C3%9Cbersicht%20M%C3%A4rz.pdf; size=3");
  assert.ok(part!.endsWith('\r\n\r\nQUJD'));
});

test('Content-Type parameters are read one by one: only an 8-bit one changes; the type, a name or the boundary cannot', () => {
  const single = (contentType: string) => crlf(['From: a@example.com', 'MIME-Version: 1.0', `Content-Type: ${contentType}`, '', 'x']);
  const { message } = ok(normalize(single('text/plain; a=b (c); name="Grüße.txt" (x); charset=us-ascii; d=e'), SEVEN));
  assert.equal(header(split(message).header, 'Content-Type'), "text/plain; a=b (c); name*=utf-8''Gr%C3%BC%C3%9Fe.txt (x); charset=us-ascii; d=e");
  assertTransitSafe(message, true);
  for (const [contentType, what] of [
    ['text/plän; charset=us-ascii', 'The media type'],
    ['text/plain (ü); charset=us-ascii', 'The media type'],
    ['text/plain; a=b; nä=c', 'A parameter'],
    ['text/plain; a=b; name*=ü', 'A parameter'],
    ['multipart/mixed; a=b; boundary="ä"', 'The boundary parameter'],
  ]) {
    const reply = refused(normalize(single(contentType!), SEVEN));
    assert.equal(reply.code, 554, contentType);
    assert.match(reply.text, new RegExp(`^5\\.6\\.7 ${what} in the Content-Type: header holds 8-bit octets`), contentType);
  }
});

test('8-bit text in the preamble cannot be kept byte-exact and 7-bit: refused with the reason', () => {
  const msg = crlf([
    'From: a@example.com',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary=b',
    '',
    'Dies ist eine mehrteilige Nachricht — MIME.',
    '--b',
    '',
    'x',
    '--b--',
  ]);
  const { code, text } = refused(normalize(msg, SEVEN));
  assert.equal(code, 554);
  assert.match(text, /^5\.6\.3 The multipart\/mixed part needs re-encoding \(8-bit data\) but its preamble or epilogue would need changing$/);
});

test('a quoted-printable part with raw 8-bit octets is re-encoded cleanly', () => {
  const msg = Buffer.concat([
    Buffer.from(
      'From: a@example.com\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr',
    ),
    Buffer.from([0xfc, 0xdf]),
    Buffer.from('e =3D ok\r\n'),
  ]);
  const { message } = ok(normalize(msg, SEVEN));
  assert.deepEqual(decodeQP(split(message).body), Buffer.concat([Buffer.from('Gr'), Buffer.from([0xfc, 0xdf]), Buffer.from('e = ok\r\n')]));
  assertTransitSafe(message, true);
});
