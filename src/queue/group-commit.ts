// Group commit: items that arrive together are committed in one transaction,
// so the cost of its fsync is shared instead of paid once per message. Each
// item's promise settles only after the transaction that holds it has
// committed (or failed), and when the commit hands back a promise (its fsync,
// still running), only after that too.
//
// Nothing waits on a timer for company. A group is the items that arrived in
// one turn of the event loop (sessions woken by the same fsync of the spool
// folder arrive together), and while the previous group's fsync runs, the
// items that arrive meanwhile gather: they would have waited for the fsync
// after it anyway, so gathering them costs them no time and saves
// transactions. A fixed delay added its length to every message's latency,
// even to a message alone.

export interface GroupCommitOptions {
  /** How long the first item of a group waits for others when no fsync is under way. Default 0: the rest of this turn of the event loop. */
  maxDelayMs?: number;
  /** A transaction starts at once when this many items wait. Default 64. */
  maxBatch?: number;
}

interface Waiting<T> {
  item: T;
  resolve: (done: void | Promise<void>) => void;
  reject: (err: unknown) => void;
}

export class GroupCommit<T> {
  readonly #commit: (items: T[]) => void | Promise<void>;
  readonly #maxDelayMs: number;
  readonly #maxBatch: number;
  #waiting: Waiting<T>[] = [];
  #scheduled: { cancel(): void } | undefined;
  /** The last group's fsync while it runs. */
  #syncing: Promise<void> | undefined;

  /** `commit` runs one synchronous transaction over the items; it throws to roll back. */
  constructor(commit: (items: T[]) => void | Promise<void>, options: GroupCommitOptions = {}) {
    this.#commit = commit;
    this.#maxDelayMs = options.maxDelayMs ?? 0;
    this.#maxBatch = options.maxBatch ?? 64;
  }

  /** Resolves once the item is committed. */
  add(item: T): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ item, resolve, reject });
      if (this.#waiting.length >= this.#maxBatch) this.flush();
      else if (!this.#scheduled && !this.#syncing) this.#schedule();
    });
  }

  /** Commits whatever waits, now. */
  flush(): void {
    this.#scheduled?.cancel();
    this.#scheduled = undefined;
    const batch = this.#waiting;
    this.#waiting = [];
    if (batch.length === 0) return;
    try {
      const done = this.#commit(batch.map((w) => w.item));
      for (const w of batch) w.resolve(done);
      if (done) this.#gatherUntil(done);
    } catch (err) {
      if (batch.length === 1) {
        batch[0]!.reject(err);
        return;
      }
      // One bad item must not fail the others: each is tried in its own transaction.
      for (const w of batch) {
        try {
          w.resolve(this.#commit([w.item]));
        } catch (own) {
          w.reject(own);
        }
      }
    }
  }

  #schedule(): void {
    if (this.#maxDelayMs > 0) {
      const timer = setTimeout(() => this.flush(), this.#maxDelayMs);
      this.#scheduled = { cancel: () => clearTimeout(timer) };
    } else {
      const immediate = setImmediate(() => this.flush());
      this.#scheduled = { cancel: () => clearImmediate(immediate) };
    }
  }

  /** Items arriving while `done` runs wait for it, then go in one group. */
  #gatherUntil(done: Promise<void>): void {
    const syncing = done.then(
      () => undefined,
      () => undefined,
    );
    this.#syncing = syncing;
    void syncing.then(() => {
      if (this.#syncing !== syncing) return;
      this.#syncing = undefined;
      if (this.#waiting.length > 0 && !this.#scheduled) this.#schedule();
    });
  }
}
