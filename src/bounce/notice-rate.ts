// How many notices one address may receive in a window (bounce.maxPerAddress
// per bounce.addressWindow). A stream of mail with a forged envelope sender
// would otherwise turn into a stream of signed notices at that address;
// past the limit they are dropped (the failures stay in the log and the
// queue's records). Fixed windows, counted from an address's first notice.
// The counts live in memory: a restart forgets them, which can only let a
// few more notices through, never hold one back for good.

export type NoticeRateDecision =
  /** Within the limit: send it. */
  | 'send'
  /** The first notice over the limit in this window: drop it, and say so once. */
  | 'first-excess'
  /** Over the limit again in the same window: drop it quietly. */
  | 'excess';

export interface NoticeRateOptions {
  /** Notices per address and window. */
  max: number;
  windowMs: number;
  /** Addresses tracked at most; the oldest windows are forgotten first. */
  maxAddresses?: number;
}

interface Window {
  start: number;
  sent: number;
  told: boolean;
}

export class NoticeRate {
  readonly #max: number;
  readonly #windowMs: number;
  readonly #maxAddresses: number;
  /** In insertion order, which is window-start order: a new window is a new entry. */
  readonly #windows = new Map<string, Window>();

  constructor(options: NoticeRateOptions) {
    this.#max = options.max;
    this.#windowMs = options.windowMs;
    this.#maxAddresses = options.maxAddresses ?? 100_000;
  }

  /** Counts one notice to `address` at `now` (ms) if the limit allows it. */
  take(address: string, now: number): NoticeRateDecision {
    const key = address.toLowerCase();
    let window = this.#windows.get(key);
    if (!window || now - window.start >= this.#windowMs) {
      this.#windows.delete(key);
      this.#forgetOld(now);
      window = { start: now, sent: 0, told: false };
      this.#windows.set(key, window);
    }
    if (window.sent < this.#max) {
      window.sent++;
      return 'send';
    }
    if (window.told) return 'excess';
    window.told = true;
    return 'first-excess';
  }

  /**
   * Gives back a 'send' whose notice could not be queued after all (spool
   * full): the attempt is repeated later, and must not count twice.
   */
  refund(address: string, now: number): void {
    const window = this.#windows.get(address.toLowerCase());
    if (window && now - window.start < this.#windowMs && window.sent > 0) window.sent--;
  }

  /** Drops windows that have ended, and the oldest ones past maxAddresses. */
  #forgetOld(now: number): void {
    for (const [key, window] of this.#windows) {
      if (now - window.start < this.#windowMs && this.#windows.size < this.#maxAddresses) break;
      this.#windows.delete(key);
    }
  }
}
