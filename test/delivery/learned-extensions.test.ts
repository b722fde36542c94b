// When the upstream's extensions are asked for again, with an injected clock.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LearnedExtensions } from '../../src/delivery/learned-extensions.ts';

test('before any answer: 7-bit, no SMTPUTF8, and a probe is due', () => {
  const learned = new LearnedExtensions(300_000, 30_000);
  assert.deepEqual([learned.extensions, learned.known, learned.due(0)], [{ eightBitMime: false, smtpUtf8: false }, false, true]);
});

test('an answer is trusted for the refresh time; a change is reported', () => {
  const learned = new LearnedExtensions(300_000, 30_000);
  assert.equal(learned.answer(['PIPELINING', '8BITMIME', 'SMTPUTF8'], 1000), false);
  assert.deepEqual(learned.extensions, { eightBitMime: true, smtpUtf8: true });
  assert.equal(learned.due(1000 + 299_999), false);
  assert.equal(learned.due(1000 + 300_000), true);
  assert.equal(learned.answer(['8BITMIME'], 2000), true);
  assert.deepEqual(learned.extensions, { eightBitMime: true, smtpUtf8: false });
  assert.equal(learned.answer(['8BITMIME'], 3000), false);
});

test('a failed probe keeps what was known and is retried after the retry time', () => {
  const learned = new LearnedExtensions(300_000, 30_000);
  learned.failure(0);
  assert.equal(learned.due(29_999), false);
  assert.equal(learned.due(30_000), true);
  learned.answer(['8BITMIME'], 40_000);
  learned.failure(50_000);
  assert.deepEqual([learned.known, learned.extensions.eightBitMime], [true, true]);
  assert.equal(learned.due(79_999), false);
  assert.equal(learned.due(80_000), true);
});

test('relearn makes a probe due at once', () => {
  const learned = new LearnedExtensions(300_000, 30_000);
  learned.answer(['8BITMIME'], 0);
  assert.equal(learned.due(1), false);
  learned.relearn();
  assert.equal(learned.due(1), true);
  learned.answer([], 2);
  assert.equal(learned.due(3), false);
});
