// Giving queue.db's space back after a backlog. A delivered message's pages
// go to SQLite's free list, where the next messages reuse them; the file keeps
// the size the largest backlog gave it (messages of up to 128 KiB are kept in
// it). Once most of the file is free, it is given back to the file system a
// step at a time, on the event loop between sessions' work: a step moves or
// cuts at most STEP_OCTETS, a few milliseconds. A queue that is large and
// busy is left alone: its free pages are about to be used again.
import type { Logger } from '../common/logger.ts';
import type { DatabaseSpace, QueueIndex } from './queue-index.ts';

/** At most this much of queue.db is given back in one step. */
export const STEP_OCTETS = 4 * 1024 * 1024;
/** Free space below this is not worth a step. */
export const KEEP_FREE_OCTETS = 4 * 1024 * 1024;
/** How often queue.db's free pages are looked at (one PRAGMA each time). */
export const RECLAIM_EVERY_MS = 1000;

const mib = (octets: number) => Math.round(octets / 104_857.6) / 10;

/**
 * Pages to give back now: none while less than a quarter of the file is free
 * (SQLite reuses them soon enough) or less than KEEP_FREE_OCTETS; else a step.
 */
export function pagesToReclaim(space: DatabaseSpace): number {
  if (!space.reclaimable) return 0;
  const used = space.pages - space.free;
  if (space.free * space.pageSize < KEEP_FREE_OCTETS || space.free * 3 < used) return 0;
  return Math.min(space.free, Math.max(1, Math.floor(STEP_OCTETS / space.pageSize)));
}

export interface SpaceReclaimOptions {
  index: Pick<QueueIndex, 'file' | 'space' | 'reclaim' | 'checkpoint'>;
  logger: Logger;
  /** A step that failed (a full disk, the queue command's write lock): tried again at the next look. */
  failed(err: unknown): void;
  succeeded(): void;
  everyMs?: number;
}

export class SpaceReclaimer {
  readonly #o: SpaceReclaimOptions;
  #timer: NodeJS.Timeout | undefined;
  /** The run of steps going on: what the file was, and how much it gave back. */
  #run: { fromPages: number; freedPages: number; steps: number } | undefined;

  constructor(options: SpaceReclaimOptions) {
    this.#o = options;
  }

  start(): void {
    this.#timer ??= setInterval(() => this.look(), this.#o.everyMs ?? RECLAIM_EVERY_MS).unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One look: a step when one is due, and one log line when a run of steps has ended. */
  look(): void {
    try {
      const space = this.#o.index.space();
      const pages = pagesToReclaim(space);
      if (pages > 0) {
        this.#run ??= { fromPages: space.pages, freedPages: 0, steps: 0 };
        this.#run.freedPages += this.#o.index.reclaim(pages);
        this.#run.steps++;
      } else if (this.#run) {
        const run = this.#run;
        this.#run = undefined;
        // Without a checkpoint an idle relay's WAL would hold the cut until the next backlog.
        this.#o.index.checkpoint();
        this.#o.logger.info(
          {
            file: this.#o.index.file,
            freedMiB: mib(run.freedPages * space.pageSize),
            fromMiB: mib(run.fromPages * space.pageSize),
            nowMiB: mib(space.pages * space.pageSize),
            steps: run.steps,
          },
          'queue.db gave the space of a delivered backlog back to the file system',
        );
      }
      this.#o.succeeded();
    } catch (err) {
      this.#o.failed(err);
    }
  }
}

/**
 * The most queued mail a start-up rewrite copies: VACUUM writes the pages in
 * use twice, and the relay does not listen meanwhile (0.4 s for 64 MiB on
 * a two-core virtual machine). A larger queue is rewritten at a later start.
 */
export const REWRITE_MAX_OCTETS = 64 * 1024 * 1024;

/**
 * At start-up: a queue.db made before it could give space back is rewritten
 * once (VACUUM, a copy of the pages in use). Should that fail (VACUUM needs
 * room for a copy), the relay runs as before and the next start tries again.
 */
export function makeReclaimable(index: Pick<QueueIndex, 'file' | 'makeReclaimable' | 'space'>, logger: Logger): void {
  const started = performance.now();
  try {
    const before = index.space();
    if (before.reclaimable) return;
    const used = (before.pages - before.free) * before.pageSize;
    if (used > REWRITE_MAX_OCTETS) {
      logger.info(
        { file: index.file, queuedMiB: mib(used), atMostMiB: mib(REWRITE_MAX_OCTETS) },
        'queue.db holds too much queued mail to be rewritten before the relay listens: it keeps its size after a backlog until a start with a smaller queue rewrites it',
      );
      return;
    }
    index.makeReclaimable();
    const { pages, pageSize } = index.space();
    logger.info(
      { file: index.file, sizeMiB: mib(pages * pageSize), ms: Math.round(performance.now() - started) },
      'queue.db rewritten once (VACUUM) so that it can give the space of a delivered backlog back',
    );
  } catch (err) {
    logger.warn(
      { file: index.file, err: err instanceof Error ? err.message : String(err) },
      'queue.db could not be rewritten to give space back after a backlog (VACUUM needs room for a copy of it): it keeps its size; tried again at the next start',
    );
  }
}
