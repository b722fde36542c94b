import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CrlfStream } from '../../src/message/crlf-stream.ts';
import { toCrlf } from '../../src/message/lines.ts';

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
