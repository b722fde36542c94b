// The one place the relay's background work fails to: the rotation pass, DNS
// observation, DMARC readiness, the upstream extension probe, notice mail,
// queue maintenance and metrics collection each run through it. A failure
// never ends the process: it is logged once per cause with the task's name
// (background-tasks.ts decides when to log again), counted in
// dkim_relay_background_failures_total{task}, kept for the status page, and
// written to <queue.dir>/background.json for `dkim-relay status`, another
// process (task-health-file.ts). The task runs again at its next time, as its own timer says.
//
// What fails outside every task is a bug: stopOnUnexpected ends the process
// with one fatal line, and the service manager starts it again.
import { afterFailure, afterSuccess, BACKGROUND_TASKS, causeOf, type BackgroundTask, type HealthDecision, type TaskHealth } from './background-tasks.ts';
import type { Logger } from './logger.ts';
import { clearTaskHealth, writeTaskHealth } from './task-health-file.ts';

/** What the supervisor counts failures in; the relay's metrics registry is one. */
export interface FailureCounter {
  backgroundFailed(task: BackgroundTask): void;
}

export interface SupervisorOptions {
  logger: Logger;
  /** Counts each failed run (dkim_relay_background_failures_total); none: not counted. */
  metrics?: FailureCounter;
  /** queue.dir: where `status` finds the tasks' health; none: kept in memory only. */
  dir?: string;
  now?: () => number;
}

export class Supervisor {
  readonly #o: SupervisorOptions;
  readonly #metrics: FailureCounter | undefined;
  readonly #now: () => number;
  readonly #health = new Map<BackgroundTask, TaskHealth>();
  #persistFailed = false;

  constructor(options: SupervisorOptions) {
    this.#o = options;
    this.#metrics = options.metrics;
    this.#now = options.now ?? Date.now;
    if (options.dir) clearTaskHealth(options.dir);
  }

  /** Runs one task's turn; a failure is reported and resolves to undefined. */
  async run<T>(task: BackgroundTask, work: () => Promise<T>): Promise<T | undefined> {
    try {
      const result = await work();
      this.succeeded(task);
      return result;
    } catch (err) {
      this.failed(task, err);
      return undefined;
    }
  }

  /** The same, for work that does not wait (a metrics scrape's collection). */
  runSync<T>(task: BackgroundTask, work: () => T): T | undefined {
    try {
      const result = work();
      this.succeeded(task);
      return result;
    } catch (err) {
      this.failed(task, err);
      return undefined;
    }
  }

  /** `logged`: the failure's owner has logged it with more context; it is recorded and counted, not logged twice. */
  failed(task: BackgroundTask, err: unknown, options: { logged?: boolean } = {}): void {
    this.#metrics?.backgroundFailed(task);
    const decision = afterFailure(this.#health.get(task), task, causeOf(err), this.#now());
    this.#apply(options.logged && decision.log === 'failed' ? { ...decision, log: undefined } : decision);
  }

  succeeded(task: BackgroundTask): void {
    const decision = afterSuccess(this.#health.get(task), this.#now());
    if (decision) this.#apply(decision);
  }

  /** Each task that failed since the relay started, in the order of BACKGROUND_TASKS. */
  health(): TaskHealth[] {
    return BACKGROUND_TASKS.flatMap((task) => this.#health.get(task) ?? []);
  }

  #apply({ health, log }: HealthDecision): void {
    this.#health.set(health.task, health);
    const { logger } = this.#o;
    const line = { task: health.task, err: health.cause };
    if (log === 'failed') logger.error(line, `background task ${health.task} failed; it runs again at its next time`);
    if (log === 'still-failing') logger.error({ ...line, repeats: health.repeats, since: health.since }, `background task ${health.task} still failing`);
    if (log === 'recovered') logger.info({ task: health.task, repeats: health.repeats, since: health.since }, `background task ${health.task} works again`);
    this.#persist();
  }

  #persist(): void {
    const { dir, logger } = this.#o;
    if (!dir) return;
    try {
      writeTaskHealth(dir, { pid: process.pid, updatedAt: new Date(this.#now()).toISOString(), tasks: this.health() });
      this.#persistFailed = false;
    } catch (err) {
      // Once until it works again: a full disk would otherwise add a line to every failure it causes.
      if (!this.#persistFailed) logger.warn({ dir, err: causeOf(err) }, "could not record the background tasks' health for `dkim-relay status`");
      this.#persistFailed = true;
    }
  }
}

/**
 * An exception or rejection that no task caught is a bug: one fatal line
 * (its stack inside it), exit 70 (EX_SOFTWARE), and the service manager
 * starts the relay again. Carrying on could leave it half-working unseen.
 */
export function stopOnUnexpected(logger: Logger): void {
  const fatal = (what: string) => (err: unknown) => {
    logger.fatal({ err: causeOf(err), stack: err instanceof Error ? err.stack : undefined }, `unexpected ${what}: stopping (a bug; please report it)`);
    logger.flush();
    process.exit(70);
  };
  process.on('uncaughtException', fatal('exception'));
  process.on('unhandledRejection', fatal('rejection'));
}
