import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { parseHeader, splitMessage } from '../../src/message/header.ts';
import { BodyHasher } from '../../src/signing/body-hash.ts';
import { RelaxedBody, relaxedHeader, spaceBeforeSpaceOrCr } from '../../src/signing/canonicalization/relaxed.ts';
import { SimpleBody, simpleHeader } from '../../src/signing/canonicalization/simple.ts';
import type { Canonicalization } from '../../src/signing/canonicalization/types.ts';

/** Canonicalizes `body`, fed in pieces of `chunkSize` octets. */
function canon(mode: Canonicalization, body: Buffer | string, chunkSize = Infinity): string {
  const input = typeof body === 'string' ? Buffer.from(body, 'latin1') : body;
  const out: Buffer[] = [];
  // Copy: the sink contract allows the canonicalizer to reuse its buffer.
  const sink = (b: Buffer): void => void out.push(Buffer.from(b));
  const c = mode === 'relaxed' ? new RelaxedBody(sink) : new SimpleBody(sink);
  const step = Number.isFinite(chunkSize) ? chunkSize : Math.max(input.length, 1);
  for (let i = 0; i < input.length; i += step) c.update(input.subarray(i, i + step));
  c.end();
  return Buffer.concat(out).toString('latin1');
}

// RFC 6376 §3.4.6, with <SP>, <HTAB> and <CRLF> written out.
const RFC_MESSAGE = 'A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n';

test('RFC 6376 §3.4.6 example: relaxed', () => {
  const { header, body } = splitMessage(Buffer.from(RFC_MESSAGE, 'latin1'));
  const headers = parseHeader(header)
    .map((f) => relaxedHeader(f.raw))
    .join('');
  assert.equal(headers, 'a:X\r\nb:Y Z\r\n');
  assert.equal(canon('relaxed', body), ' C\r\nD E\r\n');
});

test('RFC 6376 §3.4.6 example: simple', () => {
  const { header, body } = splitMessage(Buffer.from(RFC_MESSAGE, 'latin1'));
  const headers = parseHeader(header)
    .map((f) => simpleHeader(f.raw))
    .join('');
  assert.equal(headers, 'A: X\r\nB : Y\t\r\n\tZ  \r\n');
  assert.equal(canon('simple', body), ' C \r\nD \t E\r\n');
});

test('relaxed header: 8-bit octets pass through, name lower-cased, WSP around the colon dropped', () => {
  const raw = Buffer.from('SUBJECT \t:\t Grüße  aus\r\n\t Köln \t', 'utf8').toString('latin1');
  assert.equal(Buffer.from(relaxedHeader(raw), 'latin1').toString('utf8'), 'subject:Grüße aus Köln\r\n');
  assert.equal(relaxedHeader('X-Empty:'), 'x-empty:\r\n');
  assert.equal(relaxedHeader('X-Blank:   '), 'x-blank:\r\n');
});

test('empty body and bodies of only blank lines', () => {
  for (const body of ['', '\r\n', '\r\n\r\n\r\n']) {
    assert.equal(canon('relaxed', body), '', JSON.stringify(body));
    assert.equal(canon('simple', body), '\r\n', JSON.stringify(body));
  }
  // Whitespace-only lines are empty lines to relaxed, content to simple.
  assert.equal(canon('relaxed', ' \r\n\t\r\n'), '');
  assert.equal(canon('simple', ' \r\n\t\r\n'), ' \r\n\t\r\n');
  // Well-known hashes of the two empty canonical bodies.
  assert.equal(new BodyHasher('relaxed').digest(), '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=');
  assert.equal(new BodyHasher('simple').digest(), 'frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=');
});

test('trailing empty lines are dropped, inner ones kept', () => {
  const body = 'a\r\n\r\n\r\nb \r\n\r\n \r\n\r\n';
  assert.equal(canon('simple', body), 'a\r\n\r\n\r\nb \r\n\r\n \r\n');
  assert.equal(canon('relaxed', body), 'a\r\n\r\n\r\nb\r\n');
  // A missing final CRLF is added.
  assert.equal(canon('simple', 'a'), 'a\r\n');
  assert.equal(canon('relaxed', 'a'), 'a\r\n');
});

test('bare CR and bare LF are content, not line breaks', () => {
  assert.equal(canon('simple', 'a\rb\nc\r\n\r\n'), 'a\rb\nc\r\n');
  assert.equal(canon('relaxed', 'a \rb\r\r\n'), 'a \rb\r\r\n');
});

const TRICKY = [
  RFC_MESSAGE,
  'line one  \t \r\n\r\n\t \t\r\n  two\t\tthree \r\n\r\n \r\n',
  '\r\n\r\n\r\nx\r\n\r\n',
  '.\r\n..dots\r\n.\r\n',
  Buffer.from('Grüße, 😀 \t\r\n\r\n', 'utf8').toString('latin1'),
];

test('chunk boundaries do not matter: one byte at a time equals one piece', () => {
  for (const mode of ['relaxed', 'simple'] as const) {
    for (const body of TRICKY) {
      const whole = canon(mode, body);
      for (const size of [1, 2, 3, 7]) assert.equal(canon(mode, body, size), whole, `${mode} size ${size} ${JSON.stringify(body)}`);
      const one = new BodyHasher(mode).update(Buffer.from(body, 'latin1')).digest();
      const bytes = new BodyHasher(mode);
      for (const b of Buffer.from(body, 'latin1')) bytes.update(Buffer.from([b]));
      assert.equal(bytes.digest(), one);
    }
  }
});

test('bodies canonicalized in turns, chunk by chunk, come out as each alone (the relaxed output buffer is shared)', () => {
  const bodies = randomBodies(200, 2026).map((b) => Buffer.from(b.repeat(40), 'latin1'));
  const outs = bodies.map(() => [] as Buffer[]);
  const canons = bodies.map((_, k) => new RelaxedBody((b) => void outs[k]!.push(Buffer.from(b))));
  for (let at = 0; bodies.some((b) => at < b.length); at += 97) {
    for (const [k, body] of bodies.entries()) if (at < body.length) canons[k]!.update(body.subarray(at, at + 97));
  }
  canons.forEach((c) => c.end());
  bodies.forEach((body, k) => assert.equal(Buffer.concat(outs[k]!).toString('latin1'), canon('relaxed', body), `body ${k}`));
});

test('the search for a SP before SP or CR finds the first one from every position, at either parity', () => {
  const naive = (b: Buffer, from: number): number => {
    for (let i = from; i + 1 < b.length; i++) if (b[i] === 0x20 && (b[i + 1] === 0x20 || b[i + 1] === 0x0d)) return i;
    return -1;
  };
  let x = 7;
  const rand = (n: number): number => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return x % n;
  };
  for (let n = 0; n < 3000; n++) {
    const length = rand(24);
    const b = Buffer.from(Array.from({ length }, () => ' \ra\n\t'.charCodeAt(rand(5))));
    for (let from = 0; from <= length; from++) assert.equal(spaceBeforeSpaceOrCr(b, from), naive(b, from), `${JSON.stringify(b.toString())} from ${from}`);
  }
  assert.equal(spaceBeforeSpaceOrCr(Buffer.from('ab \r'), 0), 2);
  assert.equal(spaceBeforeSpaceOrCr(Buffer.from('abc  '), 0), 3);
  assert.equal(spaceBeforeSpaceOrCr(Buffer.from('a b c '), 0), -1, 'a space at the end has nothing after it here');
});

/** Straightforward whole-body reference versions of RFC 6376 §3.4.3 and §3.4.4 (CRLF input). */
function reference(mode: Canonicalization, body: string): string {
  let s = body;
  if (mode === 'relaxed') s = s.replace(/[ \t]+\r\n/g, '\r\n').replace(/[ \t]+/g, ' ');
  s = s.replace(/(\r\n)+$/, '');
  if (s === '') return mode === 'simple' ? '\r\n' : '';
  return s + '\r\n';
}

function randomBodies(count: number, seed: number): string[] {
  let x = seed;
  const rand = (n: number): number => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return x % n;
  };
  const atoms = ['a', 'b', ' ', '\t', '\r\n', '\r\n', '.', '\xe9'];
  const bodies: string[] = [];
  for (let i = 0; i < count; i++) {
    let s = '';
    for (let n = rand(40); n > 0; n--) s += atoms[rand(atoms.length)];
    // The signer's input always ends in CRLF (toCrlf) unless the body is empty.
    bodies.push(s === '' || s.endsWith('\r\n') ? s : s + '\r\n');
  }
  return bodies;
}

test('random bodies in random chunks match a whole-body reference', () => {
  for (const [i, body] of randomBodies(2000, 42).entries()) {
    for (const mode of ['relaxed', 'simple'] as const) {
      assert.equal(canon(mode, body, 1 + (i % 5)), reference(mode, body), `${mode} ${JSON.stringify(body)}`);
    }
  }
});

test('long bodies mixing clean runs and dense whitespace, in chunks of every size, match the reference', () => {
  // Long enough for the canonicalizer to pass clean runs on whole and to switch to its byte loop
  // and back where places to change come on every line (trailing spaces, indentation, blank lines).
  let x = 2026;
  const rand = (n: number): number => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return x % n;
  };
  const pieces = [
    'The quick brown fox jumps over the lazy dog, again and again.\r\n',
    'flowed text with a trailing space \r\n',
    '    indented  line\twith  runs\r\n',
    '\r\n\r\n',
    ' \t \r\n',
    'x'.repeat(300) + '\r\n',
    'bare\rcr and a tab\t\r\n',
  ];
  for (let i = 0; i < 24; i++) {
    let body = '';
    for (let n = 100 + rand(1000); n > 0; n--) {
      const piece = pieces[rand(pieces.length)]!;
      body += piece.repeat(1 + rand(i % 2 === 0 ? 3 : 60));
    }
    const size = [1 + rand(7), 63 + rand(4), 1000 + rand(9000), 64 * 1024][i % 4]!;
    assert.equal(canon('relaxed', body, size), reference('relaxed', body), `body ${i}, chunks of ${size}`);
  }
});

test('random bodies match dkimpy canonicalization', () => {
  const bodies = randomBodies(300, 7);
  const script = [
    'import sys, json, base64',
    'from dkim.canonicalization import Relaxed, Simple',
    'bodies = [base64.b64decode(b) for b in json.load(sys.stdin)]',
    'print(json.dumps([[base64.b64encode(c.canonicalize_body(b)).decode() for c in (Relaxed, Simple)] for b in bodies]))',
  ].join('\n');
  const input = JSON.stringify(bodies.map((b) => Buffer.from(b, 'latin1').toString('base64')));
  const out = JSON.parse(execFileSync('/usr/bin/python3', ['-c', script], { input, timeout: 60_000 }).toString()) as [string, string][];
  assert.equal(out.length, bodies.length);
  bodies.forEach((body, i) => {
    const [relaxed, simple] = out[i]!;
    assert.equal(canon('relaxed', body, 3), Buffer.from(relaxed, 'base64').toString('latin1'), JSON.stringify(body));
    assert.equal(canon('simple', body, 3), Buffer.from(simple, 'base64').toString('latin1'), JSON.stringify(body));
  });
});

test('a million trailing blank lines are held as a count and re-emitted when content follows', () => {
  const blank = Buffer.from('\r\n'.repeat(1_000_000));
  for (const mode of ['relaxed', 'simple'] as const) {
    const h = new BodyHasher(mode);
    h.update(Buffer.from('x\r\n')).update(blank).update(Buffer.from('y\r\n')).update(blank);
    const expected = createHash('sha256')
      .update(Buffer.concat([Buffer.from('x\r\n'), blank, Buffer.from('y\r\n')]))
      .digest('base64');
    assert.equal(h.digest(), expected);
    assert.equal(h.canonicalLength, 6 + blank.length);
  }
});

test('body length limit: only the first l= octets are hashed, the full length is still counted', () => {
  const body = Buffer.from('hello  world\r\nsecond line\r\n\r\n');
  const h = new BodyHasher('relaxed', 5);
  h.update(body);
  assert.equal(h.digest(), createHash('sha256').update('hello').digest('base64'));
  assert.equal(h.hashedLength, 5);
  assert.equal(h.canonicalLength, 'hello world\r\nsecond line\r\n'.length);
  assert.throws(() => h.update(body), /after digest/);
});

test('a 25 MB body streams in 64 KiB chunks', () => {
  const line = Buffer.from('The quick  brown fox\tjumps over the lazy dog. 0123456789 \r\n');
  const body = Buffer.alloc(25 * 1024 * 1024);
  for (let o = 0; o < body.length; o += line.length) line.copy(body, o);
  body.write('\r\n', body.length - 2, 'latin1');
  for (const mode of ['relaxed', 'simple'] as const) {
    const chunked = new BodyHasher(mode);
    for (let o = 0; o < body.length; o += 65536) chunked.update(body.subarray(o, o + 65536));
    const whole = new BodyHasher(mode).update(body);
    assert.equal(chunked.digest(), whole.digest());
    assert.ok(chunked.canonicalLength > 20 * 1024 * 1024);
  }
});

test('long text-like bodies in large chunks (the verbatim-run fast path) match the reference and dkimpy', () => {
  let seed = 20261122;
  const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const pieces = [
    'The quick brown fox jumps over the lazy dog. ',
    'x'.repeat(150),
    '\r\n',
    ' ',
    '  ',
    '\t',
    ' \t ',
    ' \r\n',
    '\t\r\n',
    '\r\n\r\n',
    '\r',
    '\n',
    '.',
    '\xe9',
  ];
  const bodies: string[] = [];
  for (let b = 0; b < 200; b++) {
    const parts: string[] = [];
    const length = Math.floor(random() * 600);
    for (let k = 0; k < length; k++) {
      const r = random();
      parts.push(r < 0.6 ? pieces[0]! : r < 0.75 ? '\r\n' : pieces[Math.floor(random() * pieces.length)]!);
    }
    // Bodies reach the canonicalizer CRLF-terminated (toCrlf); their ends are where held
    // line breaks and whitespace-only lines decide the output, so each gets a chosen one.
    bodies.push(parts.join('') + ['\r\n', '\r\n \r\n', '\r\n\t\r\n\r\n', '\r\n\r\n \t \r\n'][b % 4]!);
  }
  for (const body of bodies) {
    const expected = reference('relaxed', body);
    assert.equal(canon('relaxed', body), expected, 'whole');
    assert.equal(canon('relaxed', body, 100 + Math.floor(random() * 5000)), expected, 'chunked');
  }
  const script = [
    'import sys, json, base64',
    'from dkim.canonicalization import Relaxed',
    'print(json.dumps([base64.b64encode(Relaxed.canonicalize_body(base64.b64decode(b))).decode() for b in json.load(sys.stdin)]))',
  ].join('\n');
  const input = JSON.stringify(bodies.map((b) => Buffer.from(b, 'latin1').toString('base64')));
  const out = JSON.parse(execFileSync('/usr/bin/python3', ['-c', script], { input, timeout: 60_000, maxBuffer: 64 * 1024 * 1024 }).toString()) as string[];
  assert.equal(out.length, bodies.length);
  bodies.forEach((body, i) => assert.equal(canon('relaxed', body, 4096), Buffer.from(out[i]!, 'base64').toString('latin1')));
});
