// Failed AUTH per client, counted across connections (as Postfix's anvil):
// each failure makes the next answer slower, and after `maxFailures` within
// the penalty window the client may not try again until the window ends.
// Pure bookkeeping with an injected clock; the listener does the waiting.
import ipaddr from 'ipaddr.js';

export interface AuthLimits {
  /** Failures allowed per client within `penaltyMs` before it is shut out. */
  maxFailures: number;
  /** How long failures are remembered, and how long a client that used them up is refused. */
  penaltyMs: number;
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

interface Entry {
  failures: number;
  /** Time of the last failure; the entry expires penaltyMs after it. */
  last: number;
}

/** The answer after the n-th failure waits 1 s, 2 s, 4 s … at most 8 s (a pause per try, as smtpd_error_sleep_time). */
const delayAfter = (failures: number) => Math.min(1000 * 2 ** (failures - 1), 8000);

export class AuthLimiter {
  private readonly limits: Required<AuthLimits>;
  /** In insertion order, oldest first: every update re-inserts, so the first key is the stalest. */
  private readonly entries = new Map<string, Entry>();

  constructor(limits: AuthLimits) {
    this.limits = { ...limits, maxClients: limits.maxClients ?? 10_000, now: limits.now ?? Date.now };
  }

  /** How long (ms) this client is still refused, or 0 when it may try. */
  refusedFor(address: string): number {
    const entry = this.current(clientKey(address));
    if (!entry || entry.failures < this.limits.maxFailures) return 0;
    return entry.last + this.limits.penaltyMs - this.limits.now();
  }

  /** Records a failed attempt. */
  fail(address: string): Failure {
    const key = clientKey(address);
    const entry = this.current(key) ?? { failures: 0, last: 0 };
    entry.failures++;
    entry.last = this.limits.now();
    this.entries.delete(key);
    this.entries.set(key, entry);
    this.trim();
    const blocked = entry.failures >= this.limits.maxFailures;
    return { delayMs: blocked ? 0 : delayAfter(entry.failures), blocked, first: entry.failures === 1 };
  }

  /** Clients remembered now (for tests of the bound). */
  get size(): number {
    return this.entries.size;
  }

  private current(key: string): Entry | undefined {
    const entry = this.entries.get(key);
    if (entry && this.limits.now() - entry.last >= this.limits.penaltyMs) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  /** Bounded memory: many addresses push out the stalest entries, never grow the map past maxClients. */
  private trim(): void {
    for (const key of this.entries.keys()) {
      if (this.entries.size <= this.limits.maxClients) return;
      this.entries.delete(key);
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
