#!/usr/bin/env node
// dkim-relay's command line. Exit status: 0 success, 1 a check failed,
// 2 a usage or configuration error — always one line saying how to mend it.
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { UserError } from '../common/errors.ts';
import { configCommand } from './config.ts';
import { dnsCommand } from './dns.ts';
import { CheckFailed, type GlobalArgs } from './context.ts';
import { keysCommand } from './keys.ts';
import { signCommand, verifyCommand } from './message.ts';
import { passwdCommand } from './passwd.ts';
import { queueCommand } from './queue.ts';
import { reportsCommand } from './reports.ts';
import { serveCommand } from './serve.ts';
import { statusCommand } from './status.ts';

function fail(line: string, code: number): never {
  if (line) process.stderr.write(`dkim-relay: ${line}\n`);
  process.exit(code);
}

const COMMANDS = new Set(['serve', 'keys', 'dns', 'sign', 'verify', 'config', 'passwd', 'status', 'queue', 'reports']);

/** Commands whose output has no JSON form: `serve` logs JSON lines anyway, `sign` writes the message itself. */
const WITHOUT_JSON = new Set(['serve', 'sign']);

/** The line without a closing "(see --help)." of its own: the caller points at the help itself. */
function withoutHelpHint(line: string): string {
  let end = line.length;
  if (line[end - 1] === '.') end--;
  if (line[end - 1] === ')') end--;
  if (!line.slice(0, end).endsWith('see --help')) return line.trim();
  end -= 'see --help'.length;
  if (line[end - 1] === '(') end--;
  const kept = line.slice(0, end).trimEnd();
  return (kept.endsWith(';') || kept.endsWith(',') ? kept.slice(0, -1) : kept).trim();
}

/**
 * yargs' complaint as one line (its "Invalid values:" comes on two), pointing
 * at the help of the command at hand: "what is wrong — how to mend it".
 */
export function usageLine(message: string, argv: string[]): string {
  const words = argv.filter((a) => !a.startsWith('-'));
  const command = COMMANDS.has(words[0] ?? '') ? words[0] : undefined;
  let line = withoutHelpHint(
    message
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '')
      .join(' '),
  );
  if (!command && words[0] !== undefined && (line === `Unknown argument: ${words[0]}` || line.startsWith('Did you mean'))) {
    line = `unknown command ${words[0]}${line.startsWith('Did you mean') ? `; ${line.replace(/^Did/, 'did')}` : ''}`;
  }
  return `${line} — see dkim-relay ${command ? `${command} ` : ''}--help`;
}

/**
 * An option given without its value (`keys list --domain $EMPTY`) reaches a
 * command as "": refused here, or it would mean "every domain".
 */
function emptyOption(args: Record<string, unknown>): string | undefined {
  for (const [key, value] of Object.entries(args)) {
    if (key === '_' || key === '$0' || /[A-Z]/.test(key)) continue; // yargs' camelCase copy of a --kebab-case option
    if (value === '' || (Array.isArray(value) && value.includes(''))) return `--${key} needs a value`;
  }
  return undefined;
}

export async function main(argv: string[]): Promise<void> {
  let cli = yargs(argv)
    .scriptName('dkim-relay')
    .usage('$0 <command> [options]\n\nSigns mail with DKIM for senders that cannot, checks its own signatures, and relays it.')
    .option('config', { type: 'string', describe: 'configuration file (default config/dkim-relay.yaml, or $DKIM_RELAY_CONFIG)', global: true })
    .option('json', { type: 'boolean', describe: 'machine-readable output (every command that lists or reports; not serve or sign)', global: true })
    .check((args) => {
      const command = String(args._[0]);
      if (args.json && WITHOUT_JSON.has(command)) return `${command} has no --json output`;
      return emptyOption(args) ?? true;
    }) as unknown as Argv<GlobalArgs>;
  cli = serveCommand(cli);
  cli = cli.command('keys', 'manage signing keys and their DNS records', keysCommand);
  cli = cli.command('dns', 'check what DNS really serves: keys, SPF and DMARC', dnsCommand);
  cli = signCommand(cli);
  cli = verifyCommand(cli);
  cli = configCommand(cli);
  cli = passwdCommand(cli);
  cli = statusCommand(cli);
  cli = queueCommand(cli);
  cli = reportsCommand(cli);
  await cli
    .example('$0 serve', 'run the relay (embedded default: 127.0.0.1:2525, demo key, delivery into outbox/)')
    .example('$0 keys generate --domain example.com', 'a new key and the DNS record to publish')
    .example('$0 sign < in.eml > out.eml', 'sign one message as the relay would')
    .demandCommand(1, 'name a command')
    .strict()
    .recommendCommands()
    .help()
    .version()
    .fail((message: string, err: Error | undefined) => {
      // yargs' own complaints (YError, and what .check() returns) are usage errors; a command's errors go on to the catch below.
      if (err instanceof Error && err.name !== 'YError') throw err;
      fail(usageLine(message, argv), 2);
    })
    .parseAsync();
}

// `dkim-relay keys list | head -1`: a reader that leaves early is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

try {
  await main(hideBin(process.argv));
} catch (err) {
  if (err instanceof UserError) fail(err.toLine(), 2);
  if (err instanceof CheckFailed) fail(err.message, 1);
  fail(`unexpected error: ${(err as Error).stack ?? String(err)}`, 70);
}
