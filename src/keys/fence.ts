// Fencing a leader's writes. The lease that lets one relay of a fleet run the
// rotation carries an epoch that grows at every takeover; every write the
// leader makes names the epoch it holds and is refused, in the same
// transaction, when the lease row says another: a leader that was paused past
// its lease (SIGSTOP, a long GC, a stalled VM) and wakes up cannot act twice.

export interface Fence {
  /** The lease's name in the leases table. */
  lease: string;
  epoch: number;
}

/** A write refused because a newer leader holds the lease. */
export class Fenced extends Error {
  readonly fence: Fence;
  readonly current: number | null;
  constructor(fence: Fence, current: number | null) {
    super(`the ${fence.lease} lease is at epoch ${current ?? 'none'}, this relay holds epoch ${fence.epoch}: a newer leader took over`);
    this.name = 'Fenced';
    this.fence = fence;
    this.current = current;
  }
}
