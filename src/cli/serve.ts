// `serve`: run the relay until SIGTERM/SIGINT; SIGHUP reloads the configuration.
import { constants } from 'node:os';
import type { Argv } from 'yargs';
import type { LoadedConfig } from '../config/load.ts';
import { UserError } from '../common/errors.ts';
import { createLogger, routeConsoleTo, type Logger } from '../common/logger.ts';
import { metrics } from '../observability/metrics.ts';
import { SpoolLock } from '../queue/spool-lock.ts';
import { startRelay, type RunningRelay } from '../daemon/daemon.ts';
import { stopOnUnexpected, Supervisor } from '../common/supervisor.ts';
import { checkedConfig, type GlobalArgs } from './context.ts';

export function serveCommand(yargs: Argv<GlobalArgs>) {
  return yargs.command<GlobalArgs>(
    'serve',
    'run the relay: listen, sign, self-check, deliver (SIGHUP reloads the configuration)',
    (y) => y.option('json', { hidden: true }).example('$0 serve --config /etc/dkim-relay/dkim-relay.yaml', 'as the systemd unit runs it'),
    async (args) => {
      // What runs: the configuration the relay was last started with, settings kept at a reload included.
      let running = checkedConfig(args);
      const logger = createLogger(running.config.log.level, 1, running.config.log.format);
      routeConsoleTo(logger);
      stopOnUnexpected(logger);
      // Before anything in queue.dir is read or changed; held until the process ends, across reloads (queue.dir never changes live).
      const lock = SpoolLock.acquire(running.config.queue.dir);
      const supervisor = new Supervisor({ logger, dir: running.config.queue.dir, metrics });
      let relay = await startRelay(running, logger, { supervisor });
      let reloading = Promise.resolve();
      // Relays a reload replaced, while their sessions finish.
      const retiring = new Set<Retiring>();

      await new Promise<void>((resolve, reject) => {
        let stopping = false;
        let signals = 0;

        process.on('SIGHUP', () => {
          if (stopping) return logger.warn('stopping: SIGHUP ignored');
          reloading = reloading
            .then(() => reload(args, running, relay, logger, supervisor))
            .then((next) => {
              running = next.running;
              relay = next.relay;
              const { retired } = next;
              if (retired) {
                retiring.add(retired);
                void retired.done.then(() => retiring.delete(retired));
              }
            })
            .catch((err: Error) => {
              // Nothing listens any more: exit, so that the service manager sees it and an administrator is told.
              stopping = true;
              logger.fatal(
                { err: err instanceof UserError ? err.toLine() : err.message },
                'reload failed and the previous configuration could not start again: exiting',
              );
              reject(err);
            });
        });

        // A terminal's Ctrl-C reaches the whole process group, so through bin/dkim-relay.js the
        // relay receives SIGINT twice: only a third signal cuts the sessions in flight off.
        const stop = (signal: NodeJS.Signals) => {
          signals += 1;
          if (signals === 1) {
            stopping = true;
            logger.info({ signal }, 'signal received');
            reloading
              .then(() => {
                // The sessions a reload let finish are now told 421 at their next command, as the others are.
                for (const { relay: old } of retiring) old.hurry();
                return Promise.all([relay.stop(), ...[...retiring].map((r) => r.done)]);
              })
              .then(
                () => {
                  lock.release();
                  resolve();
                },
                (err: Error) => {
                  logger.error({ err: err.message }, 'error while stopping');
                  resolve();
                },
              );
          } else if (signals === 2) {
            logger.warn({ signal }, 'already stopping: sessions in flight are finishing; a third signal stops at once');
          } else {
            logger.warn({ signal }, 'stopping at once: sessions in flight are cut off');
            logger.flush();
            process.exit(128 + constants.signals[signal]);
          }
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
      });
    },
  );
}

/** A relay a reload replaced, while its sessions finish. */
interface Retiring {
  relay: RunningRelay;
  done: Promise<void>;
}

/**
 * A new configuration that does not validate, or names a file the relay
 * could not use, is refused and the relay runs on unchanged. Otherwise a new
 * relay starts and takes over the listening sockets from the old one, which
 * accepts until then (the ports are never free), then retires: its sessions
 * go on until their clients quit (`retired.done` settles when they have). If the
 * new one cannot start, what was running starts again, and if that cannot
 * start either, the reload fails.
 */
async function reload(
  args: GlobalArgs,
  running: LoadedConfig,
  relay: RunningRelay,
  logger: Logger,
  supervisor: Supervisor,
): Promise<{ running: LoadedConfig; relay: RunningRelay; retired?: Retiring }> {
  let loaded: LoadedConfig;
  try {
    loaded = checkedConfig(args);
  } catch (err) {
    logger.error({ err: err instanceof UserError ? err.toLine() : describe(err) }, 'reload refused: configuration kept as it was');
    return { running, relay };
  }
  const next = keepRestartOnly(running, loaded, logger);
  let handOver!: () => void;
  const done = relay.stop(new Promise<void>((resolve) => (handOver = resolve))).catch((err: unknown) => {
    logger.error({ err: describe(err) }, 'error while stopping the relay a reload replaced');
  });
  const retired: Retiring = { relay, done };
  logger.level = next.config.log.level;
  try {
    // The queue is the same one: its messages and attempts in flight are no crash's leftovers.
    const started = await startRelay(next, logger, { recover: false, supervisor });
    logger.info('configuration reloaded');
    return { running: next, relay: started, retired };
  } catch (err) {
    logger.level = running.config.log.level;
    logger.error({ err: describe(err) }, 'reload failed: restarting with the previous configuration');
    try {
      return { running, relay: await startRelay(running, logger, { recover: false, supervisor }), retired };
    } catch (again) {
      handOver();
      await done;
      throw new UserError(
        `reload failed (${describe(err)}) and the previous configuration could not start again (${describe(again)})`,
        'the relay has stopped: mend the configuration (dkim-relay config check) and start it again',
      );
    }
  } finally {
    handOver();
  }
}

/**
 * Settings that hold state the running relay owns cannot change live: the
 * spool (accepted mail would be left behind in the old one, and the lock on it
 * is the process's), the delivery mode (queue mode's spool against sync
 * mode's intake files), and the key store (the keys queued mail was signed
 * with, and the rotation state). Their running values are kept, and the log
 * says so; a restart applies them.
 */
function keepRestartOnly(running: LoadedConfig, next: LoadedConfig, logger: Logger): LoadedConfig {
  const now = running.config;
  const config = { ...next.config, queue: { ...next.config.queue }, delivery: { ...next.config.delivery }, keys: { ...next.config.keys } };
  const kept: string[] = [];
  if (config.queue.dir !== now.queue.dir) {
    kept.push(`queue.dir (${now.queue.dir})`);
    config.queue.dir = now.queue.dir;
  }
  if (config.delivery.mode !== now.delivery.mode) {
    kept.push(`delivery.mode (${now.delivery.mode})`);
    config.delivery.mode = now.delivery.mode;
  }
  if (config.keys.dir !== now.keys.dir) {
    kept.push(`keys.dir (${now.keys.dir})`);
    config.keys.dir = now.keys.dir;
  }
  if (config.log.format !== now.log.format) {
    // The logger, and with it the format of its lines, lives as long as the process.
    kept.push(`log.format (${now.log.format ?? 'unset'})`);
    config.log = { ...config.log, format: now.log.format };
  }
  if (kept.length > 0) logger.warn({ kept }, 'reload: these settings take effect only at a restart; their running values are kept');
  return { ...next, config };
}

function describe(err: unknown): string {
  return String((err as Error).message ?? err).split('\n')[0]!;
}
