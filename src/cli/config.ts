// `config check`: validate the configuration and print the effective one.
import type { Argv } from 'yargs';
import { stringify } from 'yaml';
import { wideNetworkAdvice } from '../access/wide-networks.ts';
import { rotationAdvice } from '../rotation/policy.ts';
import { checkedConfig, print, printJson, type GlobalArgs } from './context.ts';

export function configCommand(yargs: Argv<GlobalArgs>) {
  return yargs.command('config', 'inspect the configuration', (y) =>
    y
      .command<GlobalArgs>(
        'check',
        'validate the configuration and print the effective one, defaults included',
        (c) => c,
        (args) => {
          // The files it names too, as `serve` and a reload check them.
          const { config, path } = checkedConfig(args);
          // Valid but probably not meant: said on standard error, so the printed configuration stays clean.
          for (const advice of [...rotationAdvice(config.rotation), ...wideNetworkAdvice(config.access.networks)])
            process.stderr.write(`dkim-relay: note: ${advice}\n`);
          const upstream = config.delivery.upstream;
          const shown = {
            ...config,
            access: { ...config.access, users: config.access.users.map((u) => ({ name: u.name, password: '[hashed]' })) },
            delivery: {
              ...config.delivery,
              upstream: upstream.type === 'smtp' && upstream.auth ? { ...upstream, auth: { ...upstream.auth, pass: '[hidden]' } } : upstream,
            },
          };
          if (args.json) return printJson(shown);
          print(`# ${path ?? 'embedded default (no configuration file)'}: valid\n${stringify(shown)}`);
        },
      )
      .demandCommand(1, 'name a config command: check'),
  );
}
