// Retry timing and giving up: pure functions, a fixed clock, a scripted random source.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { afterTemporaryFailure, DEFAULT_RETRY_POLICY, delayWarningDue, retryDelay, retryPolicy } from '../../src/queue/backoff.ts';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const noJitter = { ...DEFAULT_RETRY_POLICY, jitter: 0 };
const never = () => 0;

test('waits double from one minute and stop growing at one hour', () => {
  const waits = [1, 2, 3, 4, 5, 6, 7, 8, 20, 2000].map((n) => retryDelay(n, noJitter, never));
  assert.deepEqual(
    waits,
    [1, 2, 4, 8, 16, 32, 60, 60, 60, 60].map((m) => m * MIN),
  );
});

test('jitter only shortens a wait, by at most its share, and follows the random source', () => {
  assert.equal(
    retryDelay(1, DEFAULT_RETRY_POLICY, () => 0),
    MIN,
  );
  assert.equal(
    retryDelay(1, DEFAULT_RETRY_POLICY, () => 0.5),
    0.9 * MIN,
  );
  assert.equal(
    retryDelay(1, DEFAULT_RETRY_POLICY, () => 0.999999),
    Math.round(MIN * (1 - 0.2 * 0.999999)),
  );
  assert.equal(
    retryDelay(30, DEFAULT_RETRY_POLICY, () => 0.25),
    0.95 * HOUR,
  );
  // Recipients deferred together come back spread out.
  const spread = new Set([0, 0.1, 0.2, 0.3].map((r) => retryDelay(3, DEFAULT_RETRY_POLICY, () => r)));
  assert.equal(spread.size, 4);
});

test('a temporary failure before maxAge is retried; one at or after it bounces', () => {
  const receivedAt = Date.UTC(2026, 10, 22, 10);
  assert.deepEqual(afterTemporaryFailure({ receivedAt, attempts: 1, now: receivedAt + 5_000 }, noJitter, never), {
    action: 'retry',
    at: receivedAt + 5_000 + MIN,
  });
  assert.deepEqual(afterTemporaryFailure({ receivedAt, attempts: 40, now: receivedAt + DAY }, noJitter, never), {
    action: 'retry',
    at: receivedAt + DAY + HOUR,
  });
  assert.deepEqual(afterTemporaryFailure({ receivedAt, attempts: 120, now: receivedAt + 5 * DAY }, noJitter, never), { action: 'bounce', reason: 'expired' });
  assert.deepEqual(afterTemporaryFailure({ receivedAt, attempts: 121, now: receivedAt + 6 * DAY }, noJitter, never), { action: 'bounce', reason: 'expired' });
});

test('the last retry is moved to the deadline, not past it', () => {
  const receivedAt = 0;
  const now = 5 * DAY - 10 * MIN;
  assert.deepEqual(afterTemporaryFailure({ receivedAt, attempts: 100, now }, noJitter, never), { action: 'retry', at: 5 * DAY });
});

test('delay warnings: off by default, once, after the delay, and only if NOTIFY allows', () => {
  const base = { receivedAt: 0, now: 5 * HOUR, warnedAt: null, notify: null };
  assert.equal(delayWarningDue(base, DEFAULT_RETRY_POLICY), false);
  const warn4h = { ...DEFAULT_RETRY_POLICY, delayWarningMs: 4 * HOUR };
  assert.equal(delayWarningDue(base, warn4h), true);
  assert.equal(delayWarningDue({ ...base, now: 3 * HOUR }, warn4h), false);
  assert.equal(delayWarningDue({ ...base, warnedAt: 4 * HOUR }, warn4h), false);
  assert.equal(delayWarningDue({ ...base, notify: ['FAILURE'] }, warn4h), false);
  assert.equal(delayWarningDue({ ...base, notify: ['NEVER'] }, warn4h), false);
  assert.equal(delayWarningDue({ ...base, notify: ['FAILURE', 'DELAY'] }, warn4h), true);
});

test('the configuration section gives the policy in milliseconds', () => {
  assert.deepEqual(retryPolicy({ retryAfter: '1m', maxRetryInterval: '1h', maxAge: '5d' }), DEFAULT_RETRY_POLICY);
  assert.equal(retryPolicy({ retryAfter: '30s', maxRetryInterval: '2h', maxAge: '3d', delayWarning: '4h' }).delayWarningMs, 4 * HOUR);
});
