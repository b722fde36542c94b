// The running relay's watch on the report mailbox, as the supervised
// background task dmarc-reports. Where the server offers IDLE (RFC 2177) the
// relay stays connected and imports each report as it arrives; where it does
// not, it looks every reports.imap.intervalSeconds. A connection that drops or
// cannot be made is a logged, counted failure, and the relay connects again
// after a back-off; no fault of the server ends the process.
import type { Logger } from '../common/logger.ts';
import type { Supervisor } from '../common/supervisor.ts';
import type { Config } from '../config/schema.ts';
import type { KeyStore } from '../keys/key-store.ts';
import { readPasswordFile } from '../config/imap-password-file.ts';
import { MailboxSession } from './imap-source.ts';
import { importContext, importReport, resultLine } from './import.ts';
import type { KeptReportStores } from './kept-report-stores.ts';

/** The first reconnection after a failure; each further one waits twice as long, up to the poll interval. */
export const RETRY_FIRST_MS = 5_000;

/** RFC 2177 §3: IDLE is re-issued at least every 29 minutes, lest the server log the client out; a look is taken then too. */
export const IDLE_MAX_MS = 25 * 60_000;

/** How long to wait before connecting again: the poll interval, or after failures in a row a back-off up to it. Pure. */
export function reconnectDelayMs(failuresInARow: number, intervalSeconds: number, retryFirstMs = RETRY_FIRST_MS): number {
  const interval = intervalSeconds * 1000;
  if (failuresInARow === 0) return interval;
  return Math.min(interval, retryFirstMs * 2 ** Math.min(failuresInARow - 1, 30));
}

export interface ReportPollerOptions {
  config: Config['reports'];
  store: KeyStore;
  /** Where the reports are stored: the relay's, kept open for its life. */
  reports: KeptReportStores;
  logger: Logger;
  supervisor: Supervisor;
  now?: () => number;
  /** After each look that imported a report: what sums them up reads them again. */
  onImported?: () => void;
  /** The first back-off after a failure (RETRY_FIRST_MS). */
  retryFirstMs?: number;
}

export class ReportPoller {
  readonly #o: ReportPollerOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> | undefined;
  #stopped = false;
  #failures = 0;
  readonly #abort = new AbortController();

  /** The password file is checked here, when the relay starts (a UserError), and read again at every connection, as it may change. */
  constructor(options: ReportPollerOptions) {
    this.#o = options;
    if (options.config.imap) readPasswordFile(options.config.imap.passwordFile);
  }

  /** Connects now, and again whenever the connection ended; nothing without reports.imap. */
  start(): void {
    if (!this.#o.config.imap) return;
    this.#turn();
  }

  /** Ends a connection under way by closing it; what it already imported stays. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#abort.abort();
    await this.#running;
  }

  /** One look at the mailbox on a connection of its own, reported to the supervisor; resolves when it ended. */
  pollNow(): Promise<unknown> {
    return this.#supervised(async () => {
      const session = await MailboxSession.open(this.#o.config.imap!, this.#abort.signal);
      try {
        await this.#look(session);
        await session.logout();
      } finally {
        session.close();
      }
    });
  }

  #supervised(work: () => Promise<void>): Promise<unknown> {
    this.#running ??= this.#o.supervisor
      .run('dmarc-reports', async () => {
        try {
          await work();
        } catch (err) {
          if (this.#stopped) return; // the connection closed by stop(), not a failure
          this.#failures++;
          throw err;
        }
      })
      .finally(() => (this.#running = undefined));
    return this.#running;
  }

  #turn(): void {
    void this.#supervised(() => this.#session()).then(() => {
      if (this.#stopped) return;
      const delay = reconnectDelayMs(this.#failures, this.#o.config.imap!.intervalSeconds, this.#o.retryFirstMs);
      this.#timer = setTimeout(() => this.#turn(), delay);
    });
  }

  /** A look, then, where the server offers IDLE, a look each time it announces new mail; ends (rejects) when the connection does. */
  async #session(): Promise<void> {
    const { config, logger, supervisor } = this.#o;
    const imap = config.imap!;
    const session = await MailboxSession.open(imap, this.#abort.signal);
    try {
      await this.#look(session);
      if (!session.idles) {
        logger.debug({ folder: imap.folder }, `DMARC report mailbox: the server offers no IDLE; looking again in ${imap.intervalSeconds} s`);
        await session.logout();
        return;
      }
      logger.info({ folder: imap.folder }, 'DMARC report mailbox: waiting in IDLE for new reports');
      for (;;) {
        supervisor.succeeded('dmarc-reports'); // a connection that had failed works again: told now, not when it ends
        await session.waitForNews(Math.min(imap.intervalSeconds * 1000, IDLE_MAX_MS));
        await this.#look(session);
      }
    } finally {
      session.close();
    }
  }

  async #look(session: MailboxSession): Promise<void> {
    const { config, store, logger } = this.#o;
    const imap = config.imap!;
    await this.#o.reports.use('read-write', async (reports) => {
      const ctx = importContext(reports, store, config, this.#o.now);
      const polled = await session.look(config.maxBytes, (data) => importReport(data, ctx));
      this.#failures = 0;
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
    });
  }
}
