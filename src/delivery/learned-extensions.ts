// What the smart host announced in EHLO (8BITMIME, SMTPUTF8), and when to ask
// again. Pure: the clock is passed in, the probing is done elsewhere.
//
// Until the first answer the safe assumption holds: 7-bit only, no SMTPUTF8
// (mail is converted to 7-bit, which every hop carries unchanged). An answer
// is trusted for `refreshMs`; a failed probe is retried after `retryMs`. An
// EHLO seen on a new delivery connection counts as an answer too, and a reply
// that reads as a missing extension makes the next message ask again.

export interface Extensions {
  eightBitMime: boolean;
  smtpUtf8: boolean;
}

/** The extensions that matter here, from the EHLO keywords a host announced. */
export function extensionsOf(announced: Iterable<string>): Extensions {
  const names = new Set([...announced].map((e) => e.toUpperCase()));
  return { eightBitMime: names.has('8BITMIME'), smtpUtf8: names.has('SMTPUTF8') };
}

export class LearnedExtensions {
  private current: Extensions = { eightBitMime: false, smtpUtf8: false };
  private answeredAt: number | null = null;
  private failedAt: number | null = null;
  private stale = false;

  private readonly refreshMs: number;
  private readonly retryMs: number;

  constructor(refreshMs: number, retryMs: number) {
    this.refreshMs = refreshMs;
    this.retryMs = retryMs;
  }

  get extensions(): Extensions {
    return this.current;
  }

  /** Whether an EHLO answer has been seen at all. */
  get known(): boolean {
    return this.answeredAt !== null;
  }

  /** Whether a probe should start now (the caller runs at most one at a time). */
  due(now: number): boolean {
    if (this.stale) return true;
    if (this.failedAt !== null && (this.answeredAt === null || this.failedAt > this.answeredAt)) return now - this.failedAt >= this.retryMs;
    return this.answeredAt === null || now - this.answeredAt >= this.refreshMs;
  }

  /** Records an EHLO answer; returns true when it changed what we believed. */
  answer(announced: Iterable<string>, now: number): boolean {
    const next = extensionsOf(announced);
    const changed = this.answeredAt !== null && (next.eightBitMime !== this.current.eightBitMime || next.smtpUtf8 !== this.current.smtpUtf8);
    this.current = next;
    this.answeredAt = now;
    this.stale = false;
    return changed;
  }

  failure(now: number): void {
    this.failedAt = now;
    this.stale = false;
  }

  /** A reply suggested the extensions changed: ask at the next opportunity. */
  relearn(): void {
    this.stale = true;
  }
}
