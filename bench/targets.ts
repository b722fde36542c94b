// The performance targets and whether a run meets them: pure decisions on the
// measured figures, apart from measuring and printing.

export interface Figures {
  /** Median msg/s, by system and size; undefined when not measured. */
  rate(system: string, size: number): number | undefined;
  /** Median ratio of a system's rate to Postfix + OpenDKIM's over the same rounds. */
  vsPeer(system: string, size: number): number | undefined;
  /** Highest PSS of a system's processes during its runs of `size`, in bytes. */
  peakPss(system: string, size: number): number | undefined;
  /** p99 added latency at half the maximum rate, in ms. */
  p99(system: string, size: number): number | undefined;
  /** Peak PSS with four concurrent 25 MB messages, in bytes. */
  bigPss: number | undefined;
  /** Signing + self-check of a 4 KB message through the crypto pool, over the raw RSA-2048 sign rate of every core. */
  signCheck: number | undefined;
  /** Median CPU time per message of a system's processes, in µs. */
  cpu(system: string, size: number): number | undefined;
  /** One raw RSA-2048 signature on one core of this host in the same run, in µs: the part of a message's CPU no code of ours can cut. */
  rsaSignUs: number | undefined;
}

export interface Verdict {
  target: string;
  measured: string;
  met: boolean | undefined;
}

export const SMALL = 4 * 1024;
export const LARGE = 100 * 1024;
const MiB = 1024 * 1024;

const check = (target: string, value: number | undefined, ok: (v: number) => boolean, show: (v: number) => string, missing: string): Verdict =>
  value === undefined || Number.isNaN(value) ? { target, measured: missing, met: undefined } : { target, measured: show(value), met: ok(value) };

/** `queue` names the queue-mode RSA system when it ran; `sync` the sync-mode one, shown for reference when queue mode is absent. */
export function verdicts(f: Figures, systems: { queue?: string; sync: string; queueMissing: string }): Verdict[] {
  const q = systems.queue;
  const inQueue = (fn: (system: string) => number | undefined) => (q === undefined ? undefined : fn(q));
  const missing = (size: number, what: 'rate' | 'vsPeer') => {
    if (q !== undefined) return 'not measured: Postfix + OpenDKIM did not run';
    const sync = f[what](systems.sync, size);
    const shown = sync === undefined ? 'not measured' : what === 'rate' ? `${sync.toFixed(0)} msg/s` : `${sync.toFixed(2)}×`;
    return `not measured, ${systems.queueMissing} (sync mode: ${shown})`;
  };
  const rate = (v: number) => `${v.toFixed(0)} msg/s`;
  const times = (v: number) => `${v.toFixed(2)}×`;
  // CPU per message depends least on how busy the machine is; the signature's own share is shown
  // apart, as hosts differ most in RSA speed (one signature cost 250 µs on one host, 1160 on another).
  const cpu = (v: number) =>
    f.rsaSignUs === undefined
      ? `${v.toFixed(0)} µs`
      : `${v.toFixed(0)} µs (${(v - f.rsaSignUs).toFixed(0)} beyond one raw RSA-2048 signature, ${f.rsaSignUs.toFixed(0)} µs here)`;
  return [
    check(
      '4 KiB RSA-2048, queue mode: CPU per message ≤ 1.0 ms',
      inQueue((s) => f.cpu(s, SMALL)),
      (v) => v <= 1000,
      cpu,
      'not measured',
    ),
    check(
      '100 KiB RSA-2048, queue mode: CPU per message ≤ 2.0 ms',
      inQueue((s) => f.cpu(s, LARGE)),
      (v) => v <= 2000,
      cpu,
      'not measured',
    ),
    check(
      '4 KiB RSA-2048, queue mode with fsync: ≥ 1000 msg/s',
      inQueue((s) => f.rate(s, SMALL)),
      (v) => v >= 1000,
      rate,
      missing(SMALL, 'rate'),
    ),
    check(
      '4 KiB RSA-2048, queue mode: ≥ 5× Postfix + OpenDKIM',
      inQueue((s) => f.vsPeer(s, SMALL)),
      (v) => v >= 5,
      times,
      missing(SMALL, 'vsPeer'),
    ),
    check(
      '100 KiB RSA-2048, queue mode: ≥ 600 msg/s',
      inQueue((s) => f.rate(s, LARGE)),
      (v) => v >= 600,
      rate,
      missing(LARGE, 'rate'),
    ),
    check(
      '100 KiB RSA-2048, queue mode: ≥ 3× Postfix + OpenDKIM',
      inQueue((s) => f.vsPeer(s, LARGE)),
      (v) => v >= 3,
      times,
      missing(LARGE, 'vsPeer'),
    ),
    check(
      'PSS ≤ 150 MiB during the 20-session 4 KiB run',
      f.peakPss(q ?? systems.sync, SMALL),
      (v) => v <= 150 * MiB,
      (v) => `${(v / MiB).toFixed(0)} MiB`,
      'not measured',
    ),
    check(
      'four concurrent 25 MB messages: PSS ≤ 200 MB',
      f.bigPss,
      (v) => v <= 200e6,
      (v) => `${(v / 1e6).toFixed(0)} MB`,
      'not measured',
    ),
    // The target names no mode: both are shown, each judged on its own.
    ...(q === undefined
      ? []
      : [
          check(
            'p99 added latency at half the maximum rate, 4 KiB, queue mode: < 20 ms',
            f.p99(q, SMALL),
            (v) => v < 20,
            (v) => `${v.toFixed(1)} ms`,
            'not measured',
          ),
        ]),
    check(
      'p99 added latency at half the maximum rate, 4 KiB, sync mode: < 20 ms',
      f.p99(systems.sync, SMALL),
      (v) => v < 20,
      (v) => `${v.toFixed(1)} ms`,
      'not measured',
    ),
    check(
      'signing + self-check ≥ 60 % of raw RSA-2048 on all cores',
      f.signCheck,
      (v) => v >= 0.6,
      (v) => `${(v * 100).toFixed(0)} %`,
      'not measured',
    ),
  ];
}
