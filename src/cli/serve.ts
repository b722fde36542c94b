// `serve`: run the relay until SIGTERM/SIGINT.
import type { Argv } from 'yargs';
import { createLogger } from '../observability/logger.ts';
import { startRelay } from '../relay/daemon.ts';
import { configFrom, type GlobalArgs } from './context.ts';

export function serveCommand(yargs: Argv<GlobalArgs>) {
  return yargs.command<GlobalArgs>(
    'serve',
    'run the relay: listen, sign, self-check, deliver',
    (y) => y.example('$0 serve --config /etc/dkim-relay/dkim-relay.yaml', 'as the systemd unit runs it'),
    async (args) => {
      const loaded = configFrom(args);
      const logger = createLogger(loaded.config.log.level, 1);
      const relay = await startRelay(loaded, logger);
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          logger.info({ signal }, 'signal received');
          relay.stop().then(resolve, (err: Error) => {
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
