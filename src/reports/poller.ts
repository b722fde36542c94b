// The running relay's look at the report mailbox every
// reports.imap.intervalSeconds, as the supervised background task
// dmarc-reports: a server that cannot be reached is a logged, counted
// failure, and the next look comes at its time.
import type { Logger } from '../common/logger.ts';
import type { Supervisor } from '../common/supervisor.ts';
import type { Config } from '../config/schema.ts';
import type { KeyStore } from '../keys/key-store.ts';
import { pollMailbox, readPasswordFile } from './imap-source.ts';
import { importContext, importReport, resultLine } from './import.ts';
import { ReportStore } from './report-store.ts';

export interface ReportPollerOptions {
  config: Config['reports'];
  store: KeyStore;
  logger: Logger;
  supervisor: Supervisor;
  now?: () => number;
  /** After each look that imported a report: what sums them up reads them again. */
  onImported?: () => void;
}

export class ReportPoller {
  readonly #o: ReportPollerOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> | undefined;
  #stopped = false;
  readonly #abort = new AbortController();

  /** The password file is checked here, when the relay starts (a UserError), and read again at every look, as it may change. */
  constructor(options: ReportPollerOptions) {
    this.#o = options;
    if (options.config.imap) readPasswordFile(options.config.imap.passwordFile);
  }

  /** A look now, then one every intervalSeconds after the last ended; nothing without reports.imap. */
  start(): void {
    if (!this.#o.config.imap) return;
    this.#turn();
  }

  /** Ends a look under way by closing its connection; what it already imported stays. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#abort.abort();
    await this.#running;
  }

  /** One look at the mailbox, reported to the supervisor; resolves when it ended. */
  pollNow(): Promise<unknown> {
    this.#running ??= this.#o.supervisor.run('dmarc-reports', () => this.#poll()).finally(() => (this.#running = undefined));
    return this.#running;
  }

  #turn(): void {
    void this.pollNow().then(() => {
      if (!this.#stopped) this.#timer = setTimeout(() => this.#turn(), this.#o.config.imap!.intervalSeconds * 1000);
    });
  }

  async #poll(): Promise<void> {
    const { config, store, logger } = this.#o;
    const imap = config.imap!;
    const reports = ReportStore.open(store.dbFile);
    try {
      const ctx = importContext(reports, store, config, this.#o.now);
      let polled;
      try {
        polled = await pollMailbox(imap, config.maxBytes, (data) => importReport(data, ctx), this.#abort.signal);
      } catch (err) {
        if (this.#stopped) return; // the connection closed by stop(), not a failure
        throw err;
      }
      const counts = { messages: polled.length, imported: 0, duplicate: 0, ignored: 0, refused: 0 };
      for (const { uid, result } of polled) {
        counts[result.status]++;
        const line = resultLine(`IMAP ${imap.folder} message ${uid}`, result);
        if (result.status === 'refused') logger.warn({ uid, reason: result.reason }, `DMARC report ${line}`);
        else logger.info({ uid, status: result.status }, `DMARC report ${line}`);
      }
      if (counts.imported > 0) this.#o.onImported?.();
      if (polled.length > 0) logger.info(counts, 'DMARC report mailbox polled');
      else logger.debug(counts, 'DMARC report mailbox polled');
    } finally {
      reports.close();
    }
  }
}
