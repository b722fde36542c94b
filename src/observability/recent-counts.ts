// Counts of the last day, minute by minute, for the status page ("last hour",
// "last day"): Prometheus keeps history for graphs, but the page must answer
// without one. A ring of 1440 minutes per event kind, with an injected clock.

const MINUTE_MS = 60_000;
const MINUTES = 24 * 60;

export const RECENT_EVENTS = ['received', 'signed', 'selfCheckPassed', 'selfCheckFailed', 'refused', 'delivered', 'deferred', 'bounced'] as const;
export type RecentEvent = (typeof RECENT_EVENTS)[number];

export type RecentTotals = Record<RecentEvent, number>;

export class RecentCounts {
  private readonly now: () => number;
  /** Per event: the count of each minute, at index minute % MINUTES. */
  private readonly counts = new Map<RecentEvent, Uint32Array>(RECENT_EVENTS.map((e) => [e, new Uint32Array(MINUTES)]));
  /** Which minute each slot holds; a slot of an older minute counts as zero. */
  private readonly minuteOf = new Float64Array(MINUTES).fill(-1);

  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  add(event: RecentEvent, n = 1): void {
    const minute = Math.floor(this.now() / MINUTE_MS);
    const slot = minute % MINUTES;
    if (this.minuteOf[slot] !== minute) {
      for (const counts of this.counts.values()) counts[slot] = 0;
      this.minuteOf[slot] = minute;
    }
    this.counts.get(event)![slot]! += n;
  }

  /** Totals over the last `minutes` minutes, the current one included. */
  totals(minutes: number): RecentTotals {
    const current = Math.floor(this.now() / MINUTE_MS);
    const out = Object.fromEntries(RECENT_EVENTS.map((e) => [e, 0])) as RecentTotals;
    for (let back = 0; back < Math.min(minutes, MINUTES); back++) {
      const minute = current - back;
      const slot = minute % MINUTES;
      if (this.minuteOf[slot] !== minute) continue;
      for (const event of RECENT_EVENTS) out[event] += this.counts.get(event)![slot]!;
    }
    return out;
  }
}
