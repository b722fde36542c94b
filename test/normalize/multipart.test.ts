// The multipart splitter and the MIME walk on odd and hostile input: never a
// throw, untouched octets stay untouched. (That the splitter stays linear on
// hostile input is measured, by CPU time, in `npm run bench`: bench/growth.ts.)
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normalize } from '../../src/pipeline/normalize/index.ts';
import { splitMultipart } from '../../src/pipeline/normalize/multipart.ts';
import { toCrlf } from '../../src/message/lines.ts';
import { assertTransitSafe, crlf, ok, options, refused } from './support.ts';
import { replyText } from '../../src/smtp/reply.ts';

const spans = (body: string, boundary: string): string[] | null => {
  const buf = Buffer.from(body, 'latin1');
  return splitMultipart(buf, boundary)?.parts.map((p) => buf.toString('latin1', p.start, p.end)) ?? null;
};

test('delimiters with transport padding, close delimiter, preamble and epilogue', () => {
  const body = 'preamble\r\n--b \t\r\nA\r\n--b\r\nB\r\n\r\n--b--  \r\nepilogue\r\n--b\r\nnot a part\r\n';
  assert.deepEqual(spans(body, 'b'), ['A', 'B\r\n']);
  assert.equal(splitMultipart(Buffer.from(body), 'b')?.closed, true);
});

test('a line that merely starts with the boundary is content; so is a boundary mid-line', () => {
  assert.deepEqual(spans('--b\r\n--bb\r\nx --b\r\n--b-x\r\n--b--\r\n', 'b'), ['--bb\r\nx --b\r\n--b-x']);
});

test('the first delimiter may open the body; a missing close delimiter runs to the end; empty parts are skipped', () => {
  assert.deepEqual(spans('--b\r\nA\r\n--b\r\n--b\r\nC\r\n', 'b'), ['A', 'C\r\n']);
  assert.equal(splitMultipart(Buffer.from('--b\r\nA\r\n'), 'b')?.closed, false);
  assert.equal(spans('no delimiters here\r\n', 'b'), null);
});

test('boundaries with regex-special characters are matched literally', () => {
  assert.deepEqual(spans("--(.*)+'?=_\r\nA\r\n--(.*)+'?=_--\r\n", "(.*)+'?=_"), ['A']);
});

test('nesting deeper than 20 levels is left alone when nothing inside needs change, refused when it does', () => {
  const nest = (depth: number, leaf: string): string[] => {
    const lines = ['From: a@example.com', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary=b0', ''];
    const close: string[] = [];
    for (let i = 0; i < depth; i++) {
      lines.push(`--b${i}`, `Content-Type: multipart/mixed; boundary=b${i + 1}`, '');
      close.unshift(`--b${i}--`);
    }
    return [...lines, `--b${depth}`, 'Content-Type: text/plain; charset=utf-8', '', leaf, `--b${depth}--`, ...close];
  };
  const fine = crlf(nest(30, 'ascii only'));
  assert.equal(ok(normalize(fine, options({ eightBitMime: false }))).message, fine);
  const { code, text } = refused(normalize(crlf(nest(30, 'Grüße')), options({ eightBitMime: false })));
  assert.equal(code, 554);
  assert.match(text, /^5\.6\.3 .*nested deeper than 20 levels$/);
  const shallow = ok(normalize(crlf(nest(10, 'Grüße')), options({ eightBitMime: false })));
  assertTransitSafe(shallow.message, true);
});

test('malformed MIME that needs no change is left as is; when it needs change the refusal says why', () => {
  const noBoundary = crlf(['From: a@example.com', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed', '', 'Grüße']);
  assert.equal(ok(normalize(noBoundary, options())).message, noBoundary);
  assert.match(
    refused(normalize(noBoundary, options({ eightBitMime: false }))).text,
    /^5\.6\.3 The multipart\/mixed part needs re-encoding \(8-bit data\) but it has no boundary parameter$/,
  );
  const unknownCte = crlf(['From: a@example.com', 'MIME-Version: 1.0', 'Content-Transfer-Encoding: x-uuencode', '', 'y'.repeat(1000)]);
  assert.match(refused(normalize(unknownCte, options())).text, /^5\.6\.0 .*Content-Transfer-Encoding "x-uuencode" is unknown$/);
  const badPartHeader = crlf([
    'From: a@example.com',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary=b',
    '',
    '--b',
    'no colon here',
    '',
    'Grüße',
    '--b--',
  ]);
  assert.match(refused(normalize(badPartHeader, options({ eightBitMime: false }))).text, /the header of its part 1 is malformed/);
});

test('a random mutation fuzz never throws, and every accepted result is transit-safe and stable', () => {
  const seed = crlf([
    'From: "Jörg" <j@example.com>',
    'To: a@example.org, G: x@example.org, "Ä" <q@example.org>;',
    'Subject: Grüße =?utf-8?q?x?= Köln',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b1"',
    '',
    'pre',
    '--b1',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    'Hällo ' + 'x'.repeat(1200),
    '--b1',
    'Content-Type: message/rfc822',
    '',
    'From: ü <a@example.com>',
    'Content-Type: multipart/alternative; boundary=b2',
    '',
    '--b2',
    'Content-Type: text/html',
    '',
    '<p>ä</p>',
    '--b2',
    'Content-Type: application/octet-stream; name="ä.bin"',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    'abc=3D=',
    'de ' + 'y'.repeat(1100),
    '--b2--',
    '--b1',
    'Content-Type: application/pdf',
    'Content-Transfer-Encoding: base64',
    '',
    'QUJD'.repeat(400),
    '--b1--',
    'epi',
  ]).toString('latin1');
  const pieces = [
    '\r\n',
    '--b1',
    '--b2',
    '--b1--',
    '\r\n\r\n',
    'Content-Type: multipart/mixed; boundary=b1\r\n',
    ':',
    '"',
    '(',
    '<',
    '=',
    '\xff',
    ' ',
    'x'.repeat(1000),
    'Content-Transfer-Encoding: base64\r\n',
    'message/rfc822',
    '=?',
    ';',
  ];
  let random = 12345;
  const next = (n: number): number => {
    random = (random * 1103515245 + 12345) % 2147483648;
    return random % n;
  };
  for (let k = 0; k < 1500; k++) {
    let s = seed;
    for (let j = 1 + next(5); j > 0; j--) {
      const at = next(s.length);
      const r = next(10);
      if (r < 4) s = s.slice(0, at) + pieces[next(pieces.length)] + s.slice(at);
      else if (r < 7) s = s.slice(0, at) + s.slice(at + next(50));
      else s = s.slice(0, at) + String.fromCharCode(next(256)) + s.slice(at + 1);
    }
    const msg = toCrlf(Buffer.from(s, 'latin1'));
    for (const eightBitMime of [false, true]) {
      const opts = options({ eightBitMime, addDate: true, addMessageId: true });
      const result = normalize(msg, opts);
      if (!result.ok) {
        assert.equal(result.reply.code, 554, replyText(result.reply));
        assert.match(replyText(result.reply), /^5\.6\.\d [ -~]+$/);
        continue;
      }
      assertTransitSafe(result.message, !eightBitMime);
      const again = ok(normalize(result.message, opts));
      assert.equal(again.message, result.message, `not stable: ${again.changes.join('; ')}`);
    }
  }
});
