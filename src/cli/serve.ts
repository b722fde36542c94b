// `serve`: run the relay until SIGTERM/SIGINT; SIGHUP reloads the configuration.
import { constants } from 'node:os';
import type { Argv } from 'yargs';
import type { LoadedConfig } from '../config/load.ts';
import { UserError } from '../errors.ts';
import { createLogger, routeConsoleTo, type Logger } from '../observability/logger.ts';
import { startRelay, type RunningRelay } from '../relay/daemon.ts';
import { configFrom, type GlobalArgs } from './context.ts';

export function serveCommand(yargs: Argv<GlobalArgs>) {
  return yargs.command<GlobalArgs>(
    'serve',
    'run the relay: listen, sign, self-check, deliver (SIGHUP reloads the configuration)',
    (y) => y.option('json', { hidden: true }).example('$0 serve --config /etc/dkim-relay/dkim-relay.yaml', 'as the systemd unit runs it'),
    async (args) => {
      let loaded = configFrom(args);
      const logger = createLogger(loaded.config.log.level, 1, loaded.config.log.format);
      routeConsoleTo(logger);
      let relay = await startRelay(loaded, logger);
      let reloading = Promise.resolve();

      await new Promise<void>((resolve, reject) => {
        let stopping = false;
        let signals = 0;

        process.on('SIGHUP', () => {
          if (stopping) return logger.warn('stopping: SIGHUP ignored');
          reloading = reloading
            .then(() => reload(args, loaded, relay, logger))
            .then((next) => {
              loaded = next.loaded;
              relay = next.relay;
            })
            .catch((err: Error) => {
              // Nothing listens any more: exit, so that the service manager sees it and an administrator is told.
              stopping = true;
              logger.fatal({ err: err instanceof UserError ? err.toLine() : err.message }, 'reload failed and the previous configuration could not start again: exiting');
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
              .then(() => relay.stop())
              .then(resolve, (err: Error) => {
                logger.error({ err: err.message }, 'error while stopping');
                resolve();
              });
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

/**
 * A new configuration that does not validate is refused and the relay runs on
 * unchanged. Otherwise the old listeners stop accepting (their sessions in
 * flight finish) and new ones start; if they cannot, the old configuration
 * comes back, and if that cannot start either, the reload fails.
 */
async function reload(args: GlobalArgs, current: LoadedConfig, relay: RunningRelay, logger: Logger): Promise<{ loaded: LoadedConfig; relay: RunningRelay }> {
  let loaded: LoadedConfig;
  try {
    loaded = configFrom(args);
  } catch (err) {
    logger.error({ err: describe(err) }, 'reload refused: configuration kept as it was');
    return { loaded: current, relay };
  }
  const kept = keepQueue(current, loaded, logger);
  const draining = relay.stop();
  logger.level = loaded.config.log.level;
  try {
    // The queue is the same one: its messages and attempts in flight are no crash's leftovers.
    const next = await startRelay(kept, logger, { recover: false });
    logger.info('configuration reloaded');
    await draining;
    return { loaded, relay: next };
  } catch (err) {
    logger.level = current.config.log.level;
    logger.error({ err: describe(err) }, 'reload failed: restarting with the previous configuration');
    await draining;
    try {
      return { loaded: current, relay: await startRelay(current, logger, { recover: false }) };
    } catch (again) {
      throw new UserError(
        `reload failed (${describe(err)}) and the previous configuration could not start again (${describe(again)})`,
        'the relay has stopped: mend the configuration (dkim-relay config check) and start it again',
      );
    }
  }
}

/**
 * The queue's place and the delivery mode cannot change while the relay
 * runs: accepted messages would be left behind in the old spool. They are
 * kept, and the log says so; a restart applies them.
 */
function keepQueue(current: LoadedConfig, next: LoadedConfig, logger: Logger): LoadedConfig {
  const kept: string[] = [];
  const config = { ...next.config, queue: { ...next.config.queue }, delivery: { ...next.config.delivery } };
  if (config.queue.dir !== current.config.queue.dir) {
    kept.push(`queue.dir (${current.config.queue.dir})`);
    config.queue.dir = current.config.queue.dir;
  }
  if (config.delivery.mode !== current.config.delivery.mode) {
    kept.push(`delivery.mode (${current.config.delivery.mode})`);
    config.delivery.mode = current.config.delivery.mode;
  }
  if (next.config.log.format !== current.config.log.format) {
    // The logger, and with it the format of its lines, lives as long as the process.
    kept.push(`log.format (${current.config.log.format ?? 'unset'})`);
    config.log = { ...config.log, format: current.config.log.format };
  }
  if (kept.length > 0) logger.warn({ kept }, 'reload: these settings take effect only at a restart; their running values are kept');
  return { ...next, config };
}

function describe(err: unknown): string {
  return String((err as Error).message ?? err).split('\n')[0]!;
}
