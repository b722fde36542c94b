// The running relay's view of each signing domain's SPF and DMARC: looked up
// when the relay starts and at every `rotation.check`, and kept in the
// metrics, where the DMARC gauge (dkim_relay_dmarc_state) and the status page
// read it. Scrapes and page views never query DNS. `rotation.check: off`
// means this relay asks DNS nothing by itself, so it looks nothing up either.
import { createTask, type ScheduledTask } from 'node-cron';
import type { Config } from '../config/schema.ts';
import { configuredNameservers } from '../dns/nameserver.ts';
import { lookUpReadiness } from '../dns/readiness-lookup.ts';
import type { KeyStore } from '../keys/key-store.ts';
import type { Logger } from '../common/logger.ts';
import { dmarcState, type RelayMetrics } from './metrics.ts';
import { Supervisor } from '../common/supervisor.ts';
import type { ReadinessResult } from '../dns/readiness-lookup.ts';

export interface ReadinessWatchOptions {
  config: Config;
  store: KeyStore;
  metrics: RelayMetrics;
  logger: Logger;
  /** Where a failed round is reported (default: logged only). */
  supervisor?: Supervisor;
}

export class ReadinessWatch {
  private readonly options: ReadinessWatchOptions;
  private task: ScheduledTask | undefined;
  private running: Promise<Map<string, ReadinessResult>> | undefined;
  private stopped = false;
  private readonly supervisor: Supervisor;

  constructor(options: ReadinessWatchOptions) {
    this.options = options;
    this.supervisor = options.supervisor ?? new Supervisor({ logger: options.logger, metrics: options.metrics });
  }

  /** One lookup now, then one at every rotation.check. */
  start(): void {
    const { check } = this.options.config.rotation;
    if (check === 'off') return;
    const { logger } = this.options;
    // node-cron would write to the console: its few lines go to the relay's log instead.
    const log = {
      info: (m: string) => logger.debug({ cron: m }, 'readiness timer'),
      debug: () => {},
      warn: (m: string) => logger.warn({ cron: m }, 'readiness timer'),
      error: (m: string | Error) => logger.error({ cron: String(m) }, 'readiness timer'),
    };
    this.task = createTask(check, () => void this.checkNow(), { name: 'dmarc-readiness', noOverlap: true, logger: log });
    void this.task.start();
    void this.checkNow();
  }

  /**
   * Looks up every domain of the key store (removed keys aside) at
   * dns.resolvers, else the system resolver's servers, and records each
   * result; a lookup already running is shared rather than started twice.
   * A round that fails (the key store unreadable) is the supervisor's to
   * report, and resolves to no results; the next round runs at its time.
   */
  checkNow(): Promise<Map<string, ReadinessResult>> {
    this.running ??= this.supervisor
      .run('dmarc-readiness', () => this.lookUp())
      .then((results) => results ?? new Map<string, ReadinessResult>())
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  /** Stops the timer. A lookup in flight ends within its own bound; its result is dropped. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.task) await this.task.destroy();
  }

  private async lookUp(): Promise<Map<string, ReadinessResult>> {
    const { config, store, metrics, logger } = this.options;
    const domains = [
      ...new Set(
        store
          .list()
          .filter((k) => k.state !== 'removed')
          .map((k) => k.domain),
      ),
    ].sort();
    const servers = configuredNameservers(config.dns.resolvers);
    const results = await lookUpReadiness(domains, servers, config.dns.timeoutSeconds);
    if (this.stopped) return results;
    metrics.readinessChecked(results);
    logger.debug({ dmarc: Object.fromEntries([...results].map(([domain, r]) => [domain, dmarcState(r)])) }, 'DMARC readiness looked up');
    return results;
  }
}
