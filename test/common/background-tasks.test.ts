// When a failing background task is worth a log line: once per cause, again
// when the cause changes, after a recovery, and as an hourly reminder.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { afterFailure, afterSuccess, causeOf, REMIND_AFTER_MS, type LogLine, type TaskHealth } from '../../src/common/background-tasks.ts';

const T0 = Date.parse('2026-12-06T00:00:00Z');

/** Feeds events through the decisions; returns the lines logged and the last health. */
function replay(events: ([at: number, cause: string] | [at: number, 'ok'])[]): { logged: (LogLine | undefined)[]; health: TaskHealth | undefined } {
  let health: TaskHealth | undefined;
  const logged: (LogLine | undefined)[] = [];
  for (const [at, what] of events) {
    const decision = what === 'ok' ? afterSuccess(health, T0 + at) : afterFailure(health, 'rotation', what, T0 + at);
    logged.push(decision?.log);
    if (decision) health = decision.health;
  }
  return { logged, health };
}

test('the same cause again and again is logged once and counted every time', () => {
  const { logged, health } = replay([
    [0, 'disk I/O error'],
    [60_000, 'disk I/O error'],
    [120_000, 'disk I/O error'],
  ]);
  assert.deepEqual(logged, ['failed', undefined, undefined]);
  assert.equal(health!.repeats, 3);
  assert.equal(health!.total, 3);
  assert.equal(health!.since, '2026-12-06T00:00:00.000Z');
  assert.equal(health!.lastFailedAt, '2026-12-06T00:02:00.000Z');
  assert.equal(health!.state, 'failing');
});

test('a new cause is logged at once, and starts its own count', () => {
  const { logged, health } = replay([
    [0, 'disk I/O error'],
    [1000, 'disk I/O error'],
    [2000, 'database is locked'],
  ]);
  assert.deepEqual(logged, ['failed', undefined, 'failed']);
  assert.equal(health!.cause, 'database is locked');
  assert.equal(health!.repeats, 1);
  assert.equal(health!.total, 3);
});

test('a run that works is logged once as a recovery; the same cause after it is news again', () => {
  const { logged, health } = replay([
    [0, 'refused'],
    [1000, 'ok'],
    [2000, 'ok'],
    [3000, 'refused'],
  ]);
  assert.deepEqual(logged, ['failed', 'recovered', undefined, 'failed']);
  assert.equal(health!.state, 'failing');
  assert.equal(health!.recoveredAt, null);
  assert.equal(health!.total, 2);
});

test('a run that works on a task that never failed says nothing', () => {
  assert.equal(afterSuccess(undefined, T0), undefined);
});

test('a failure that lasts is recalled once an hour, not more', () => {
  const { logged, health } = replay([
    [0, 'refused'],
    [REMIND_AFTER_MS - 1, 'refused'],
    [REMIND_AFTER_MS, 'refused'],
    [REMIND_AFTER_MS + 60_000, 'refused'],
    [2 * REMIND_AFTER_MS, 'refused'],
  ]);
  assert.deepEqual(logged, ['failed', undefined, 'still-failing', undefined, 'still-failing']);
  assert.equal(health!.repeats, 5);
  assert.equal(health!.since, '2026-12-06T00:00:00.000Z', 'the reminder keeps when it began');
});

test('the cause is the first line of the message', () => {
  assert.equal(causeOf(new Error('SQLITE_BUSY: database is locked\n    at x')), 'SQLITE_BUSY: database is locked');
  assert.equal(causeOf('plain'), 'plain');
  assert.equal(causeOf(new TypeError('')), 'TypeError');
});
