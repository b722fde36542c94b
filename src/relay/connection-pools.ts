// The connection slots of the SMTP listeners, shared by every listener (plain
// and implicit TLS), so a second port does not double the limits:
// - admitted clients (access.networks) fill listen.maxClients;
// - strangers that may still AUTH fill listen.maxUnadmittedClients, of which
//   one address (IPv6: one /64) holds at most listen.maxUnadmittedClientsPerIp,
//   so one address cannot take every slot and lock out each client that must
//   log in from outside;
// - a stranger that authenticates moves to the admitted pool while that has
//   room, so logged-in clients do not crowd out the next login.
import { clientKey } from '../access/auth-limiter.ts';

export type Pool = 'admitted' | 'stranger';

export interface PoolLimits {
  admitted: number;
  stranger: number;
  strangerPerIp: number;
}

/** A connection's place in its pool. */
export interface Slot {
  /** Frees the slot (idempotent); call it once the session is gone. */
  release(): void;
  /** The client authenticated: it moves to the admitted pool while that has room (else it stays). */
  promote(): void;
}

export type Taken = { ok: true; slot: Slot } | { ok: false; why: 'full' | 'address' };

export class ConnectionPools {
  private readonly limits: PoolLimits;
  private readonly open: Record<Pool, number> = { admitted: 0, stranger: 0 };
  /** Stranger slots held, by client key. */
  private readonly strangers = new Map<string, number>();

  constructor(limits: PoolLimits) {
    this.limits = limits;
  }

  /** A slot in `pool` for a client at `address`; 'address' when the address holds its share of the stranger pool. */
  take(address: string, pool: Pool): Taken {
    if (this.open[pool] >= this.limits[pool]) return { ok: false, why: 'full' };
    const key = clientKey(address);
    if (pool === 'stranger' && (this.strangers.get(key) ?? 0) >= this.limits.strangerPerIp) return { ok: false, why: 'address' };
    this.open[pool]++;
    if (pool === 'stranger') this.strangers.set(key, (this.strangers.get(key) ?? 0) + 1);
    let held: Pool | null = pool;
    const leaveStrangers = () => {
      const left = (this.strangers.get(key) ?? 1) - 1;
      if (left > 0) this.strangers.set(key, left);
      else this.strangers.delete(key);
    };
    return {
      ok: true,
      slot: {
        release: () => {
          if (!held) return;
          this.open[held]--;
          if (held === 'stranger') leaveStrangers();
          held = null;
        },
        promote: () => {
          if (held !== 'stranger' || this.open.admitted >= this.limits.admitted) return;
          this.open.stranger--;
          leaveStrangers();
          this.open.admitted++;
          held = 'admitted';
        },
      },
    };
  }

  /** Slots held now, for tests. */
  held(pool: Pool): number {
    return this.open[pool];
  }
}
