// The self-check hashes bodies with mailauth's canonicalizers through
// src/signing/mailauth-internals.ts, whose relaxed hasher finds the lines to
// rewrite with native searches instead of mailauth's loop over every octet.
// It must hash exactly what mailauth's own does, whatever the input and
// however it is cut into chunks; and the mailauth code it follows is pinned,
// so an upgrade that changes it is read before it is trusted.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { mailauthBodyHash, shippedBodyHashers } from '../../src/signing/mailauth-internals.ts';

/** The first 16 hex digits of the SHA-256 of the methods' sources in mailauth 7.1.0. */
const SHIPPED = {
  update: '5952279a8edd0d8e',
  fixLineBuffer: '970822d2be92317c',
  _pushBodyHash: 'a80bcd403891254a',
  simpleHoldBack: '6130a25789c0bc09',
} as const;

type Hasher = { update(chunk: Buffer): void; digest(encoding: 'base64'): string };
type Counts = { byteLength: number; canonicalizedLength: number; bodyHashedBytes: number };

/** Feeds `input` cut at `cuts` and reports the digest and the hasher's counts. */
function run(hasher: Hasher, input: Buffer, cuts: number[], reuse: boolean): { digest: string } & Counts {
  const bounds = [0, ...cuts.filter((c) => c > 0 && c < input.length).sort((a, b) => a - b), input.length];
  const scratch = Buffer.alloc(input.length);
  for (let i = 0; i + 1 < bounds.length; i++) {
    const piece = input.subarray(bounds[i], bounds[i + 1]);
    if (!reuse) {
      hasher.update(Buffer.from(piece));
      continue;
    }
    // A caller that reuses its buffer: what update() was given is overwritten as soon as it returns.
    const chunk = scratch.subarray(0, piece.length);
    piece.copy(chunk);
    hasher.update(chunk);
    chunk.fill('Z');
  }
  const digest = hasher.digest('base64');
  const { byteLength, canonicalizedLength, bodyHashedBytes } = hasher as unknown as Counts;
  return { digest, byteLength, canonicalizedLength, bodyHashedBytes };
}

function compare(input: Buffer, cuts: number[], limit: number | undefined, what: string): void {
  for (const canonicalization of ['relaxed', 'simple'] as const) {
    const Shipped = canonicalization === 'relaxed' ? shippedBodyHashers.RelaxedHash : shippedBodyHashers.SimpleHash;
    const expected = run(new Shipped('sha256', limit), input, cuts, false);
    const actual = run(mailauthBodyHash(canonicalization, limit), input, cuts, true);
    if (canonicalization === 'simple') {
      assert.equal(actual.digest, expected.digest, `simple, ${what}`);
      continue;
    }
    assert.deepEqual(actual, expected, `relaxed, ${what}`);
  }
}

const latin1 = (text: string) => Buffer.from(text, 'latin1');

describe("the self-check's body hashers against mailauth's own", () => {
  test('the mailauth methods they follow are the ones they were written from', () => {
    const hash = (source: string) => createHash('sha256').update(source).digest('hex').slice(0, 16);
    // update() is carried over step for step, fixLineBuffer's rule is rewriteLine's, and rewritten lines are
    // hashed in runs on the strength of _pushBodyHash holding back the CRLFs at a run's end.
    for (const method of ['update', 'fixLineBuffer', '_pushBodyHash'] as const) {
      assert.equal(
        hash(shippedBodyHashers.RelaxedHash.prototype[method].toString()),
        SHIPPED[method],
        `mailauth's RelaxedHash.${method} changed: carry the change over to SearchingRelaxedHash, then update the hash here`,
      );
    }
    assert.equal(
      hash(shippedBodyHashers.SimpleHash.prototype._holdBack.toString()),
      SHIPPED.simpleHoldBack,
      "mailauth's SimpleHash._holdBack changed: check that CopyingSimpleHash still hands it a copy it may keep, then update the hash here",
    );
  });

  test('hand-picked bodies, cut at every octet and at every pair of octets', () => {
    const bodies = [
      '',
      'a',
      ' ',
      '\t',
      '\r',
      '\n',
      '\r\n',
      '\r\n\r\n',
      'a\r\n',
      'a \r\n',
      'a\t\r\n',
      'a  b\r\n',
      'a \tb\r\n',
      '\ta\r\n',
      ' a\r\n',
      'a\n',
      '\na\r\n',
      'a\n\nb',
      'a\r\rb\r\n',
      'a\rb \r\n',
      'abc ',
      'abc  ',
      'abc\t',
      ' \r\n \r\n',
      'x\r\n \r\n\r\n',
      'one\r\ntwo  three\r\n\r\nfour \r\n\r\n\r\n',
      'last line  with  spaces',
      'flowed \r\ntext \r\nends\r\n',
    ];
    for (const text of bodies) {
      const input = latin1(text);
      for (let i = 0; i <= input.length; i++) {
        compare(input, [i], undefined, `${JSON.stringify(text)} cut at ${i}`);
        for (let j = i + 1; j < input.length; j++) compare(input, [i, j], undefined, `${JSON.stringify(text)} cut at ${i}, ${j}`);
      }
      compare(input, [], 3, `${JSON.stringify(text)}, l=3`);
    }
  });

  test('3,000 random bodies of spaces, TABs, CRs, LFs and text, cut at random places, with and without l=', () => {
    let seed = 20261206;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const alphabet = ['a', 'b', 'word', ' ', ' ', '  ', '\t', '\r', '\n', '\r\n', '\r\n', ' \r\n', '\r\n\r\n'];
    for (let n = 0; n < 3000; n++) {
      const input = latin1(Array.from({ length: random(80) }, () => alphabet[random(alphabet.length)]!).join(''));
      const cuts = Array.from({ length: random(6) }, () => random(input.length + 1));
      const limit = random(3) === 0 ? random(input.length + 2) : undefined;
      compare(input, cuts, limit, `${JSON.stringify(input.toString('latin1'))} cut at ${cuts.join(', ')}, l=${limit}`);
    }
  });

  test('about 500 KB of every kind of line in 64 KiB chunks, and in odd ones', () => {
    const lines = ['plain text line\r\n', 'trailing space \r\n', 'two  spaces\r\n', '\tindented\r\n', '\r\n', 'bare LF\n', 'QUJDREVGR0g=\r\n'];
    const input = latin1(Array.from({ length: 43_000 }, (_, i) => lines[(i * 7 + (i >> 3)) % lines.length]).join(''));
    assert.ok(input.length > 400_000);
    const every = (step: number) => Array.from({ length: Math.floor(input.length / step) }, (_, i) => (i + 1) * step);
    compare(input, every(64 * 1024), undefined, '64 KiB chunks');
    compare(input, every(9973), undefined, '9973-octet chunks');
    compare(input, every(64 * 1024), 123_457, '64 KiB chunks, l=123457');
  });

  test('long runs of lines left as they are between rewritten ones, and a rewritten line longer than 64 KiB', () => {
    const clean = 'a line relaxed canonicalization leaves alone\r\n';
    const input = latin1(
      [
        clean.repeat(3),
        'two  spaces\r\n',
        clean.repeat(40),
        'trailing \r\n',
        clean,
        '\tTAB\r\n',
        `${'x  '.repeat(25_000)}\r\n`,
        clean.repeat(30),
        'end \r\n',
      ].join(''),
    );
    compare(input, [], undefined, 'one chunk');
    compare(input, [1000, 40_000, 64 * 1024, 100_000], undefined, 'cut in four places');
  });

  test('two bodies hashed in turns, chunk by chunk, as concurrent self-checks do', () => {
    const a = latin1('first  body \r\nwith\ttabs\r\n\r\n'.repeat(2000));
    const b = latin1('second body, plain\r\nand flowed \r\n'.repeat(2500));
    const [ha, hb] = [mailauthBodyHash('relaxed'), mailauthBodyHash('relaxed')];
    for (let at = 0; at < Math.max(a.length, b.length); at += 4096) {
      if (at < a.length) ha.update(a.subarray(at, at + 4096));
      if (at < b.length) hb.update(b.subarray(at, at + 4096));
    }
    const shipped = (body: Buffer) => {
      const h = new shippedBodyHashers.RelaxedHash('sha256');
      h.update(Buffer.from(body));
      return h.digest('base64');
    };
    assert.equal(ha.digest('base64'), shipped(a));
    assert.equal(hb.digest('base64'), shipped(b));
  });
});
