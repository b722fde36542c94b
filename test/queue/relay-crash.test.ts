// The relay killed with SIGKILL at random moments while a client floods it
// over SMTP, five times, then started again: every message that got 250 is
// delivered (duplicates are counted and reported; losses fail the test).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32, runCrashRounds } from './crash-harness.ts';

test('killed 5 times while taking mail over SMTP: every message answered 250 is delivered', async (t) => {
  const seed = Date.now() >>> 0;
  t.diagnostic(`seed ${seed}`);
  const result = await runCrashRounds({ rounds: 5, roundMs: 1500, random: mulberry32(seed), settleMs: 60_000 });
  t.diagnostic(`acknowledged ${result.acknowledged}, delivered ${result.delivered}, lost ${result.lost.length}, duplicates ${result.duplicates}`);
  assert.ok(result.acknowledged > 0, 'the flood got some 250s');
  assert.deepEqual(result.lost, []);
});
