// `serve`: run the relay until SIGTERM/SIGINT; SIGHUP reloads the configuration.
import type { Argv } from 'yargs';
import type { LoadedConfig } from '../config/load.ts';
import { UserError } from '../errors.ts';
import { createLogger, type Logger } from '../observability/logger.ts';
import { startRelay, type RunningRelay } from '../relay/daemon.ts';
import { configFrom, type GlobalArgs } from './context.ts';

export function serveCommand(yargs: Argv<GlobalArgs>) {
  return yargs.command<GlobalArgs>(
    'serve',
    'run the relay: listen, sign, self-check, deliver (SIGHUP reloads the configuration)',
    (y) => y.example('$0 serve --config /etc/dkim-relay/dkim-relay.yaml', 'as the systemd unit runs it'),
    async (args) => {
      let loaded = configFrom(args);
      const logger = createLogger(loaded.config.log.level, 1);
      let relay = await startRelay(loaded, logger);
      let reloading = Promise.resolve();

      process.on('SIGHUP', () => {
        reloading = reloading.then(async () => {
          const next = await reload(args, loaded, relay, logger);
          loaded = next.loaded;
          relay = next.relay;
        });
      });
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          logger.info({ signal }, 'signal received');
          reloading
            .then(() => relay.stop())
            .then(resolve, (err: Error) => {
              logger.error({ err: err.message }, 'error while stopping');
              resolve();
            });
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
    },
  );
}

/**
 * A new configuration that does not validate is refused and the relay runs on
 * unchanged. Otherwise the old listeners stop accepting (their sessions in
 * flight finish) and new ones start; if they cannot, the old configuration
 * comes back.
 */
async function reload(args: GlobalArgs, current: LoadedConfig, relay: RunningRelay, logger: Logger): Promise<{ loaded: LoadedConfig; relay: RunningRelay }> {
  let loaded: LoadedConfig;
  try {
    loaded = configFrom(args);
  } catch (err) {
    logger.error({ err: err instanceof UserError ? err.toLine() : (err as Error).message }, 'reload refused: configuration kept as it was');
    return { loaded: current, relay };
  }
  const draining = relay.stop();
  try {
    const next = await startRelay(loaded, logger);
    logger.info('configuration reloaded');
    await draining;
    return { loaded, relay: next };
  } catch (err) {
    logger.error({ err: err instanceof UserError ? err.toLine() : (err as Error).message }, 'reload failed: restarting with the previous configuration');
    await draining;
    return { loaded: current, relay: await startRelay(current, logger) };
  }
}
