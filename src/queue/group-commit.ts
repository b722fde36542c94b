// Group commit: items that arrive within a few milliseconds of each other are
// committed in one transaction, so the cost of its fsync is shared instead of
// paid once per message. Each item's promise settles only after the
// transaction that holds it has committed (or failed), and when the commit
// hands back a promise (its fsync, still running), only after that too.

export interface GroupCommitOptions {
  /** Longest an item waits for others to join its transaction. Default 2 ms. */
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
  #timer: NodeJS.Timeout | undefined;

  /** `commit` runs one synchronous transaction over the items; it throws to roll back. */
  constructor(commit: (items: T[]) => void | Promise<void>, options: GroupCommitOptions = {}) {
    this.#commit = commit;
    this.#maxDelayMs = options.maxDelayMs ?? 2;
    this.#maxBatch = options.maxBatch ?? 64;
  }

  /** Resolves once the item is committed. */
  add(item: T): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ item, resolve, reject });
      if (this.#waiting.length >= this.#maxBatch) this.flush();
      else this.#timer ??= setTimeout(() => this.flush(), this.#maxDelayMs);
    });
  }

  /** Commits whatever waits, now. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const batch = this.#waiting;
    this.#waiting = [];
    if (batch.length === 0) return;
    try {
      const done = this.#commit(batch.map((w) => w.item));
      for (const w of batch) w.resolve(done);
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
}
