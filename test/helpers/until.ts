// Waiting for an event rather than for time: polls a predicate until it holds,
// bounded in time (and so in count). The pause between polls only paces the
// loop; the predicate decides when the wait ends.
import { setTimeout as sleep } from 'node:timers/promises';

export interface UntilOptions {
  /** The most the wait may take (default 15 s). */
  timeoutMs?: number;
  /** The pause between two polls (default 25 ms). */
  everyMs?: number;
}

/** Resolves once `predicate` holds; fails naming `what` once `timeoutMs` has passed. */
export async function until(what: string, predicate: () => boolean | Promise<boolean>, { timeoutMs = 15_000, everyMs = 25 }: UntilOptions = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let polls = 0; polls <= timeoutMs / everyMs + 1; polls++) {
    if (await predicate()) return;
    if (Date.now() >= deadline) break;
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
