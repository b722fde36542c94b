// How many SMTP connections may be open at once: in all, and to one
// destination domain (receivers throttle or block a sender that opens too
// many). A connection waits for a slot in arrival order; one whose domain is
// at its limit does not hold up the others behind it. A slot is granted only
// when both limits allow it, so no caller ever holds one slot while waiting
// for another.

export type Release = () => void;

/** A slot; `handed`: what the connection that held it handed over with it (handOver). */
export interface Slot<H> {
  release: Release;
  handed?: H | undefined;
}

interface Waiter<H> {
  domain: string;
  grant: (slot: Slot<H>) => void;
}

export class DestinationLimits<H = never> {
  private readonly perDomain = new Map<string, number>();
  private total = 0;
  private readonly waiting: Waiter<H>[] = [];
  private readonly maxTotal: number;
  private readonly maxPerDomain: number;

  constructor(maxTotal: number, maxPerDomain: number) {
    this.maxTotal = maxTotal;
    this.maxPerDomain = maxPerDomain;
  }

  /** Connections open now: to `domain`, or in all. */
  open(domain?: string): number {
    return domain === undefined ? this.total : (this.perDomain.get(domain) ?? 0);
  }

  /** Whether a connection is waiting for a slot. */
  get contended(): boolean {
    return this.waiting.length > 0;
  }

  /**
   * Gives the slot `release` frees, with `handed`, to the first connection
   * waiting for `domain`, as it is: nothing is freed. False when none waits.
   */
  handOver(domain: string, release: Release, handed: H): boolean {
    const at = this.waiting.findIndex((w) => w.domain === domain);
    if (at < 0) return false;
    const [waiter] = this.waiting.splice(at, 1);
    waiter!.grant({ release, handed });
    return true;
  }

  /** Takes a slot at once when both limits allow it; null otherwise. */
  tryAcquire(domain: string): Release | null {
    if (this.total >= this.maxTotal || this.open(domain) >= this.maxPerDomain) return null;
    this.total++;
    this.perDomain.set(domain, this.open(domain) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      const left = this.open(domain) - 1;
      if (left === 0) this.perDomain.delete(domain);
      else this.perDomain.set(domain, left);
      this.wake();
    };
  }

  /** Waits for a slot at most `waitMs`; null when none came free in time. */
  acquire(domain: string, waitMs: number): Promise<Slot<H> | null> {
    const now = this.waiting.some((w) => w.domain === domain) ? null : this.tryAcquire(domain);
    if (now) return Promise.resolve({ release: now });
    return new Promise((resolve) => {
      const waiter: Waiter<H> = {
        domain,
        grant: (slot) => {
          clearTimeout(timer);
          resolve(slot);
        },
      };
      const timer = setTimeout(() => {
        this.waiting.splice(this.waiting.indexOf(waiter), 1);
        resolve(null);
      }, waitMs);
      this.waiting.push(waiter);
    });
  }

  private wake(): void {
    for (let i = 0; i < this.waiting.length && this.total < this.maxTotal;) {
      const waiter = this.waiting[i]!;
      const release = this.tryAcquire(waiter.domain);
      if (!release) {
        i++;
        continue;
      }
      this.waiting.splice(i, 1);
      waiter.grant({ release });
    }
  }
}
