// Direct delivery's sessions kept between messages under backlog, as
// Postfix's smtp connection cache: a session that delivered waits a moment
// for the next message to the same destination instead of saying QUIT, so a
// backlog to one domain goes over a few connections rather than one per
// message. Limits as Postfix's: idle at most CACHE_IDLE_MS
// (smtp_connection_cache_time_limit), reused for at most REUSE_TIME_MS after
// it was opened (smtp_connection_reuse_time_limit) and REUSE_COUNT times
// (smtp_connection_reuse_count_limit).
//
// A kept session keeps its connection slot (destination-limits.ts): it is
// still a connection to that domain. A message that finds no slot free first
// ends an idle session that holds one. The key names everything a session was set
// up for (domain, host name the certificate was checked against, address,
// port, TLS policy), so no message gets a session made for another policy.

export const CACHE_IDLE_MS = 2000;
export const REUSE_TIME_MS = 300_000;
export const REUSE_COUNT = 100;

/** What a kept session was set up for. */
export interface SessionKey {
  domain: string;
  host: string;
  address: string;
  port: number;
  requireTLS: boolean;
  plaintext: boolean;
}

export interface Kept<S> {
  session: S;
  /** Frees its connection slot. */
  release: () => void;
  openedAt: number;
  /** Transactions it carried. */
  uses: number;
}

interface Idle<S> extends Kept<S> {
  key: string;
  domain: string;
  timer: NodeJS.Timeout;
}

export class SessionCache<S> {
  readonly #idle = new Map<string, Idle<S>[]>();
  readonly #end: (session: S) => Promise<void>;
  readonly #now: () => number;

  /** `end`: says QUIT and closes; resolves once the connection is gone. */
  constructor(end: (session: S) => Promise<void>, now: () => number = Date.now) {
    this.#end = end;
    this.#now = now;
  }

  /** The most recently used idle session for `key`, taken out of the cache. */
  take(key: SessionKey): Kept<S> | undefined {
    const list = this.#idle.get(keyOf(key));
    const entry = list?.pop();
    if (!entry) return undefined;
    if (list!.length === 0) this.#idle.delete(entry.key);
    clearTimeout(entry.timer);
    return { session: entry.session, release: entry.release, openedAt: entry.openedAt, uses: entry.uses };
  }

  /** Whether a session may carry another transaction: it has not reached a reuse limit. */
  reusable(kept: Kept<S>): boolean {
    return kept.uses < REUSE_COUNT && this.#now() - kept.openedAt < REUSE_TIME_MS;
  }

  /** Keeps a session that just delivered, unless it reached a reuse limit; then it is ended and its slot freed. */
  park(key: SessionKey, kept: Kept<S>): void {
    if (!this.reusable(kept)) return void this.#close(kept);
    const id = keyOf(key);
    const entry: Idle<S> = { ...kept, key: id, domain: key.domain, timer: setTimeout(() => this.#evict(entry), CACHE_IDLE_MS) };
    entry.timer.unref();
    const list = this.#idle.get(id) ?? [];
    list.push(entry);
    this.#idle.set(id, list);
  }

  /**
   * Ends one idle session whose slot a message to `domain` could use: one of
   * `domain`'s own (`ownOnly`: when its own limit is what stands in the way),
   * else any. Its slot comes free once it is gone. False when there is none.
   */
  freeSlotFor(domain: string, ownOnly: boolean): boolean {
    let victim: Idle<S> | undefined;
    for (const list of this.#idle.values()) {
      for (const entry of list) {
        if (ownOnly && entry.domain !== domain) continue;
        if (!victim || (entry.domain === domain && victim.domain !== domain)) victim = entry;
      }
    }
    if (!victim) return false;
    this.#evict(victim);
    return true;
  }

  /** Ends every idle session. */
  async close(): Promise<void> {
    const all = [...this.#idle.values()].flat();
    this.#idle.clear();
    await Promise.all(
      all.map((entry) => {
        clearTimeout(entry.timer);
        return this.#close(entry);
      }),
    );
  }

  #evict(entry: Idle<S>): void {
    const list = this.#idle.get(entry.key);
    const at = list?.indexOf(entry) ?? -1;
    if (at < 0) return;
    list!.splice(at, 1);
    if (list!.length === 0) this.#idle.delete(entry.key);
    clearTimeout(entry.timer);
    void this.#close(entry);
  }

  /** The slot is freed once the connection is gone, so that the limits hold at the host too. */
  async #close(kept: Kept<S>): Promise<void> {
    try {
      await this.#end(kept.session);
    } finally {
      kept.release();
    }
  }
}

export function sameKey(a: SessionKey, b: SessionKey): boolean {
  return keyOf(a) === keyOf(b);
}

function keyOf(key: SessionKey): string {
  return [key.domain, key.host, key.address, key.port, key.requireTLS ? 'requireTLS' : '', key.plaintext ? 'plaintext' : ''].join('\n');
}
