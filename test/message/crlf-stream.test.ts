import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CrlfStream } from '../../src/message/crlf-stream.ts';
import { BARE_LINE_END_SLICE, hasBareLineEnd, isCrlfClean, toCrlf } from '../../src/message/lines.ts';

/** Deterministic, so a failure can be replayed. */
function random(seed: number): () => number {
  return () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
}

test('CRLF made chunk by chunk equals toCrlf of the whole, wherever the chunks are cut', () => {
  const rnd = random(7);
  for (let n = 0; n < 20_000; n++) {
    const input = Buffer.alloc(Math.floor(rnd() * 30));
    for (let i = 0; i < input.length; i++) input[i] = [0x0d, 0x0a, 0x41, 0x42][Math.floor(rnd() * 4)]!;
    const stream = new CrlfStream();
    const out: Buffer[] = [];
    for (let at = 0; at < input.length;) {
      const size = 1 + Math.floor(rnd() * 5);
      out.push(stream.push(input.subarray(at, at + size)));
      at += size;
    }
    out.push(stream.end());
    const want = toCrlf(input);
    assert.deepEqual(Buffer.concat(out), want, JSON.stringify(input.toString('latin1')));
    assert.equal(stream.changed, want !== input, `changed for ${JSON.stringify(input.toString('latin1'))}`);
  }
});

test('a clean chunk passes through as the same Buffer', () => {
  const stream = new CrlfStream();
  const chunk = Buffer.from('Subject: x\r\n\r\nbody\r\n');
  assert.equal(stream.push(chunk), chunk);
  assert.equal(stream.end().length, 0);
  assert.equal(stream.changed, false);
});

test('hasBareLineEnd looks at a large message in slices without a false finding at their edges, and misses none there', () => {
  const at = BARE_LINE_END_SLICE;
  const text = (length: number) => Buffer.alloc(length, 'a');
  // CRLF astride the first slice's end, with the CR as its last octet: clean.
  const straddling = Buffer.concat([text(at - 1), Buffer.from('\r\n'), text(at), Buffer.from('\r\n')]);
  assert.equal(straddling[at - 1], 0x0d);
  assert.equal(hasBareLineEnd(straddling), false);
  assert.equal(isCrlfClean(straddling), true);
  // A bare CR, a bare LF and an LF whose CR is two octets back, each where a slice ends or begins.
  for (const [what, bare] of [
    ['a bare CR ending the slice', Buffer.concat([text(at - 1), Buffer.from('\ra\r\n')])],
    ['a bare LF starting the next slice', Buffer.concat([text(at), Buffer.from('\na\r\n')])],
    ['a CR, then a new slice starting with "a\\n"', Buffer.concat([text(at - 1), Buffer.from('\ra\n')])],
  ] as const) {
    assert.equal(hasBareLineEnd(bare), true, what);
    assert.equal(isCrlfClean(bare), false, what);
  }
});
