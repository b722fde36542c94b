// The benchmark's verdicts on its targets: pure decisions on measured figures.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LARGE, SMALL, verdicts, type Figures } from '../../bench/targets.ts';

const MiB = 1024 * 1024;

function figures(over: Partial<Figures> & { rates?: Record<string, number>; ratios?: Record<string, number>; cpus?: Record<string, number> } = {}): Figures {
  const key = (system: string, size: number) => `${system}/${size}`;
  return {
    rate: (s, size) => over.rates?.[key(s, size)],
    vsPeer: (s, size) => over.ratios?.[key(s, size)],
    peakPss: over.peakPss ?? (() => 100 * MiB),
    p99: over.p99 ?? (() => 12),
    bigPss: 'bigPss' in over ? over.bigPss : 150e6,
    signCheck: 'signCheck' in over ? over.signCheck : 0.7,
    cpu: (s, size) => over.cpus?.[key(s, size)],
    rsaSignUs: 'rsaSignUs' in over ? over.rsaSignUs : 1160,
  };
}

test('queue-mode targets are judged on the queue-mode figures when queue mode ran', () => {
  const f = figures({
    rates: { [`q/${SMALL}`]: 1200, [`q/${LARGE}`]: 500 },
    ratios: { [`q/${SMALL}`]: 5.5, [`q/${LARGE}`]: 2.9 },
  });
  const v = verdicts(f, { queue: 'q', sync: 's', queueMissing: 'absent' });
  assert.deepEqual(
    v.slice(2, 6).map((x) => x.met),
    [true, true, false, false],
  );
  assert.deepEqual(
    v.slice(2, 6).map((x) => x.measured),
    ['1200 msg/s', '5.50×', '500 msg/s', '2.90×'],
  );

  const withoutPeer = verdicts(figures({ rates: { [`q/${SMALL}`]: 1200 } }), { queue: 'q', sync: 's', queueMissing: 'absent' });
  assert.deepEqual([withoutPeer[3]!.met, withoutPeer[3]!.measured], [undefined, 'not measured: Postfix + OpenDKIM did not run']);
});

test('without queue mode its targets are not measured, and the sync figures are shown for reference', () => {
  const f = figures({ rates: { [`s/${SMALL}`]: 124 }, ratios: { [`s/${SMALL}`]: 1.5 } });
  const v = verdicts(f, { sync: 's', queueMissing: 'queue mode is not in this build yet' });
  assert.equal(v[2]!.met, undefined);
  assert.equal(v[2]!.measured, 'not measured, queue mode is not in this build yet (sync mode: 124 msg/s)');
  assert.equal(v[3]!.measured, 'not measured, queue mode is not in this build yet (sync mode: 1.50×)');
  assert.equal(v[4]!.measured, 'not measured, queue mode is not in this build yet (sync mode: not measured)');
});

test('memory, latency and the share of raw RSA have their bounds', () => {
  const within = verdicts(figures({ peakPss: () => 150 * MiB, p99: () => 19.9, bigPss: 200e6, signCheck: 0.6 }), { sync: 's', queueMissing: '' });
  assert.deepEqual(
    within.slice(6).map((x) => x.met),
    [true, true, true, true],
  );
  const over = verdicts(figures({ peakPss: () => 150 * MiB + 1, p99: () => 20, bigPss: 200e6 + 1, signCheck: 0.59 }), { sync: 's', queueMissing: '' });
  assert.deepEqual(
    over.slice(6).map((x) => x.met),
    [false, false, false, false],
  );
  const missing = verdicts(figures({ bigPss: undefined, signCheck: NaN }), { sync: 's', queueMissing: '' });
  assert.deepEqual(
    missing
      .slice(7, 8)
      .concat(missing.slice(9))
      .map((x) => [x.met, x.measured]),
    [
      [undefined, 'not measured'],
      [undefined, 'not measured'],
    ],
  );
});

test('latency is judged in each mode that ran: the target names no mode', () => {
  const p99 = (system: string) => (system === 'q' ? 45 : 12);
  const v = verdicts(figures({ p99 }), { queue: 'q', sync: 's', queueMissing: '' });
  const latency = v.filter((x) => x.target.startsWith('p99'));
  assert.deepEqual(
    latency.map((x) => [x.target.includes('queue mode'), x.measured, x.met]),
    [
      [true, '45.0 ms', false],
      [false, '12.0 ms', true],
    ],
  );
});

test('CPU per message comes first, with the share beyond one raw RSA signature of this host', () => {
  const v = verdicts(figures({ cpus: { [`q/${SMALL}`]: 5250, [`q/${LARGE}`]: 1990 } }), { queue: 'q', sync: 's', queueMissing: '' });
  assert.deepEqual(
    v.slice(0, 2).map((x) => [x.target, x.measured, x.met]),
    [
      ['4 KiB RSA-2048, queue mode: CPU per message ≤ 1.0 ms', '5250 µs (4090 beyond one raw RSA-2048 signature, 1160 µs here)', false],
      ['100 KiB RSA-2048, queue mode: CPU per message ≤ 2.0 ms', '1990 µs (830 beyond one raw RSA-2048 signature, 1160 µs here)', true],
    ],
  );
  const noRaw = verdicts(figures({ cpus: { [`q/${SMALL}`]: 900 }, rsaSignUs: undefined }), { queue: 'q', sync: 's', queueMissing: '' });
  assert.deepEqual([noRaw[0]!.measured, noRaw[0]!.met], ['900 µs', true]);
  const noQueue = verdicts(figures({ cpus: { [`s/${SMALL}`]: 900 } }), { sync: 's', queueMissing: '' });
  assert.deepEqual([noQueue[0]!.measured, noQueue[0]!.met], ['not measured', undefined]);
});
