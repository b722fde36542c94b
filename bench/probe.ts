// The latency probe: one connection of its own that sends a numbered message
// at a steady low rate while other load runs; the sink notes when each
// arrives. Both run in this process, so they read the same clock: the added
// latency is arrival minus the moment the probe's final "." left.
import { benchMessage, RECIPIENT } from './message.ts';
import { SmtpSession } from './smtp-client.ts';
import { now, sleep } from './stats.ts';

export const PROBE_SENDER = 'probe@example.com';
export const PROBE_HEADER = 'X-Bench-Probe';

export interface ProbeRun {
  /** When each probe's last octet left, by its number. */
  sentAt: Map<number, number>;
  refused: number;
}

/** Sends a probe of about `size` octets every `intervalMs` for `seconds` to `port`. */
export async function probe(port: number, size: number, intervalMs: number, seconds: number): Promise<ProbeRun> {
  const smtp = await SmtpSession.open(port);
  const run: ProbeRun = { sentAt: new Map(), refused: 0 };
  const start = now();
  try {
    for (let id = 1; now() - start < seconds * 1000; id++) {
      await sleep(start + id * intervalMs - now());
      const { code, lastByteAt } = await smtp.send(PROBE_SENDER, RECIPIENT, benchMessage(size, `${PROBE_HEADER}: ${id}\r\n`));
      if (code === 250) run.sentAt.set(id, lastByteAt);
      else run.refused++;
    }
  } finally {
    await smtp.close();
  }
  return run;
}

/** Added latency of each probe that arrived, in ms, once the sink has seen them (waits up to `waitMs`). */
export async function latencies(run: ProbeRun, arrivals: Map<number, number>, waitMs = 5000): Promise<number[]> {
  const until = now() + waitMs;
  while (arrivals.size < run.sentAt.size && now() < until) await sleep(50);
  return [...run.sentAt].filter(([id]) => arrivals.has(id)).map(([id, sent]) => arrivals.get(id)! - sent);
}
