// Failed logins per client, counted across connections (as Postfix's anvil),
// and in all. A password check is reserved before it runs, never counted
// after: the reservation takes one failure from the client's budget (and
// one from the budget of all clients), and a check that succeeds gives both
// back. So parallel tries gain nothing: each client has at most one check
// under way, and while its failures are used up, or the answer to its last
// failure is still being held, it gets no check at all.
// Pure bookkeeping with an injected clock; the caller runs the check and
// holds the answer.
import ipaddr from 'ipaddr.js';

export interface AuthLimits {
  /** Failures allowed per client within `penaltyMs` before it is shut out. */
  maxFailures: number;
  /** How long failures are remembered, and how long a client that used them up is refused. */
  penaltyMs: number;
  /** Failed checks allowed per minute from all clients together (fresh addresses gain nothing past it); unset: no such bound. */
  maxFailuresPerMinute?: number;
  /** Clients remembered at most; beyond that the stalest is forgotten first. */
  maxClients?: number;
  now?: () => number;
}

export interface Failure {
  /** How long to hold the answer to this failure (0 when the connection is closed instead). */
  delayMs: number;
  /** The client used up its failures: close the connection; further AUTH is refused for the window. */
  blocked: boolean;
  /** The first failure of this client's window: worth one log line. */
  first: boolean;
}

/** A reserved password check: report its outcome exactly once. */
export interface Attempt {
  /** The password was right: the reserved failure is given back. */
  succeeded(): void;
  /** The password was wrong: the reserved failure stays; the client gets no other check until `delayMs` has passed. */
  failed(): Failure;
}

export type Reservation =
  | { ok: true; attempt: Attempt }
  /**
   * blocked: the client used up its failures; busy: a check of this client is
   * under way, or the answer to its last failure is still held; overall: the
   * failures of all clients together are used up.
   */
  | { ok: false; why: 'blocked' | 'busy' | 'overall'; retryMs: number };

interface Entry {
  failures: number;
  /** Time of the last failure; the entry expires penaltyMs after it. */
  last: number;
  /** A check is under way. */
  checking: boolean;
  /** No new check before this time (the answer to the last failure is held until then). */
  quietUntil: number;
}

/** The answer after the n-th failure waits 1 s, 2 s, 4 s … at most 8 s (a pause per try, as smtpd_error_sleep_time). */
const delayAfter = (failures: number) => Math.min(1000 * 2 ** (failures - 1), 8000);

const MINUTE_MS = 60_000;

export class AuthLimiter {
  private readonly limits: Required<Omit<AuthLimits, 'maxFailuresPerMinute'>> & { maxFailuresPerMinute?: number };
  /** In insertion order, oldest first: every update re-inserts, so the first key is the stalest. */
  private readonly entries = new Map<string, Entry>();
  /** The overall budget as a token bucket: maxFailuresPerMinute tokens, refilled evenly over a minute. */
  private tokens: number;
  private refilledAt: number;

  constructor(limits: AuthLimits) {
    this.limits = { ...limits, maxClients: limits.maxClients ?? 10_000, now: limits.now ?? Date.now };
    this.tokens = limits.maxFailuresPerMinute ?? 0;
    this.refilledAt = this.limits.now();
  }

  /** Takes a failure from the client's budget and the overall one before its password is checked. */
  reserve(address: string): Reservation {
    const now = this.limits.now();
    const key = clientKey(address);
    const entry = this.current(key, now) ?? { failures: 0, last: now, checking: false, quietUntil: 0 };
    if (entry.failures >= this.limits.maxFailures) return { ok: false, why: 'blocked', retryMs: entry.last + this.limits.penaltyMs - now };
    if (entry.checking || now < entry.quietUntil) return { ok: false, why: 'busy', retryMs: Math.max(entry.quietUntil - now, 1000) };
    const overall = this.limits.maxFailuresPerMinute;
    if (overall !== undefined) {
      this.refill(now, overall);
      if (this.tokens < 1) return { ok: false, why: 'overall', retryMs: Math.ceil(((1 - this.tokens) * MINUTE_MS) / overall) };
      this.tokens--;
    }
    entry.failures++;
    entry.last = now;
    entry.checking = true;
    this.store(key, entry);
    let settled = false;
    const settle = () => {
      if (settled) throw new Error('a password check was reported twice');
      settled = true;
      entry.checking = false;
    };
    return {
      ok: true,
      attempt: {
        succeeded: () => {
          settle();
          entry.failures--;
          if (overall !== undefined) this.tokens = Math.min(overall, this.tokens + 1);
          if (entry.failures === 0 && entry.quietUntil <= this.limits.now() && this.entries.get(key) === entry) this.entries.delete(key);
        },
        failed: () => {
          settle();
          const blocked = entry.failures >= this.limits.maxFailures;
          const delayMs = blocked ? 0 : delayAfter(entry.failures);
          entry.last = this.limits.now();
          entry.quietUntil = entry.last + delayMs;
          this.store(key, entry);
          return { delayMs, blocked, first: entry.failures === 1 };
        },
      },
    };
  }

  /** Clients remembered now (for tests of the bound). */
  get size(): number {
    return this.entries.size;
  }

  private refill(now: number, overall: number): void {
    this.tokens = Math.min(overall, this.tokens + ((now - this.refilledAt) * overall) / MINUTE_MS);
    this.refilledAt = now;
  }

  private current(key: string, now: number): Entry | undefined {
    const entry = this.entries.get(key);
    if (entry && !entry.checking && now - entry.last >= this.limits.penaltyMs) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  /** Re-inserts (the newest last), keeping memory bounded: many addresses push out the stalest entries. */
  private store(key: string, entry: Entry): void {
    this.entries.delete(key);
    this.entries.set(key, entry);
    for (const stale of this.entries.keys()) {
      if (this.entries.size <= this.limits.maxClients) return;
      this.entries.delete(stale);
    }
  }
}

/**
 * IPv4 addresses count one by one; IPv6 clients by their /64, the smallest
 * network one subscriber usually gets, so one host cannot rotate through its
 * own 2^64 addresses for fresh tries.
 */
export function clientKey(address: string): string {
  try {
    const ip = ipaddr.process(address);
    if (ip.kind() === 'ipv4') return ip.toString();
    const parts = (ip as ipaddr.IPv6).parts.slice(0, 4).map((p) => p.toString(16));
    return `${parts.join(':')}::/64`;
  } catch {
    return address;
  }
}
