// One server's record of serving a key, check after check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { observe, type DnsObservation, type ObservedState } from '../../src/rotation/observation.ts';

const T0 = Date.parse('2026-11-26T00:00:00.000Z');
const HOUR = 3_600_000;

function run(states: [number, ObservedState][], maxGapMs?: number): DnsObservation | undefined {
  let row: DnsObservation | undefined;
  for (const [hour, state] of states) row = observe(row, { keyId: 7, server: '192.0.2.53', state, detail: state }, new Date(T0 + hour * HOUR), maxGapMs);
  return row;
}

test('a run of matches keeps the time of the first one', () => {
  assert.deepEqual(
    run([
      [0, 'missing'],
      [1, 'match'],
      [2, 'match'],
      [3, 'match'],
    ]),
    {
      keyId: 7,
      server: '192.0.2.53',
      firstSeenMatching: new Date(T0 + HOUR).toISOString(),
      lastChecked: new Date(T0 + 3 * HOUR).toISOString(),
      lastState: 'match',
      detail: 'match',
    },
  );
});

test('anything but a match ends the run, and the next match starts a new one', () => {
  for (const broken of ['missing', 'mismatch', 'malformed', 'unreachable'] as const) {
    assert.equal(
      run([
        [1, 'match'],
        [2, broken],
      ])!.firstSeenMatching,
      null,
      broken,
    );
    assert.equal(
      run([
        [1, 'match'],
        [2, broken],
        [3, 'match'],
      ])!.firstSeenMatching,
      new Date(T0 + 3 * HOUR).toISOString(),
      broken,
    );
  }
});

test('a check after a gap longer than allowed starts a new run', () => {
  assert.equal(
    run(
      [
        [0, 'match'],
        [30, 'match'],
      ],
      24 * HOUR,
    )!.firstSeenMatching,
    new Date(T0 + 30 * HOUR).toISOString(),
  );
  assert.equal(
    run(
      [
        [0, 'match'],
        [24, 'match'],
      ],
      24 * HOUR,
    )!.firstSeenMatching,
    new Date(T0).toISOString(),
  );
});
