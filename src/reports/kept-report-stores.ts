// The running relay's way to its report store. A PostgreSQL pool is opened
// once per mode and kept for the life of the relay: a pool per look and per
// re-read would open new server connections (each a backend process) every
// few seconds on every relay of a fleet. A SQLite file is opened for each use,
// as it always was: that costs a file handle, and each use sees every write.
import type { KeyStore } from '../keys/key-store.ts';
import { openReportStore } from './open-report-store.ts';
import type { ReportStore } from './report-store.ts';

type Mode = 'read-write' | 'read-only';

export class KeptReportStores {
  readonly #store: Pick<KeyStore, 'engine' | 'dbFile'>;
  readonly #kept = new Map<Mode, Promise<ReportStore>>();
  #closed = false;

  constructor(store: Pick<KeyStore, 'engine' | 'dbFile'>) {
    this.#store = store;
  }

  /** Runs `work` on the report store in `mode` (read-only: as `status` opens it, never writing). */
  async use<T>(mode: Mode, work: (reports: ReportStore) => Promise<T>): Promise<T> {
    if (this.#closed) throw new Error('the report store is closed: the relay is stopping');
    if (this.#store.engine === 'sqlite') {
      const reports = await openReportStore(this.#store, mode);
      try {
        return await work(reports);
      } finally {
        await reports.close();
      }
    }
    let kept = this.#kept.get(mode);
    if (!kept) {
      kept = openReportStore(this.#store, mode);
      this.#kept.set(mode, kept);
    }
    return work(await kept);
  }

  /** Ends the kept pools; for when the relay stops, after the report watch and the metrics stopped using them. */
  async close(): Promise<void> {
    this.#closed = true;
    const kept = [...this.#kept.values()];
    this.#kept.clear();
    for (const reports of kept) await (await reports).close();
  }
}
