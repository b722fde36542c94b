// Usage errors are one line on stderr with exit 2, as the exit-status
// table promises; --json is taken where there is JSON to give, refused elsewhere.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tempDir } from '../helpers/tmp.ts';
import { dkimRelay } from './support.ts';

const dir = tempDir();

async function usageError(args: string[], expected: string): Promise<void> {
  const run = await dkimRelay(args, dir);
  assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
  assert.equal(run.stdout, '');
  assert.equal(run.stderr, `dkim-relay: ${expected}\n`);
}

test('a value that is not one of the choices', () =>
  usageError(
    ['keys', 'dns', '--format', 'bind'],
    'Invalid values: Argument: format, Given: "bind", Choices: "zone", "json", "value", "cname" — see dkim-relay keys --help',
  ));

test('missing required options', () => usageError(['keys', 'activate'], 'Missing required arguments: domain, selector — see dkim-relay keys --help'));

test('a missing argument', () => usageError(['passwd'], 'name one user — dkim-relay passwd NAME (or passwd -- NAME when it starts with "-")'));

test('an unknown option', () => usageError(['serve', '--port', '25'], 'Unknown argument: port — see dkim-relay serve --help'));

// `keys list --domain "$D"` with D empty would otherwise list every domain's keys.
test('an option given without its value', async () => {
  await usageError(['keys', 'list', '--domain'], '--domain needs a value — see dkim-relay keys --help');
  await usageError(['keys', 'dns', '--domain', ''], '--domain needs a value — see dkim-relay keys --help');
  await usageError(['keys', 'history', '--client='], '--client needs a value — see dkim-relay keys --help');
  await usageError(['keys', 'rewrap', '--new-key-file', ''], '--new-key-file needs a value — see dkim-relay keys --help');
});

test('an unknown command', () => usageError(['frobnicate'], 'unknown command frobnicate — see dkim-relay --help'));

test('a misspelt command', () => usageError(['serv'], 'unknown command serv; did you mean serve? — see dkim-relay --help'));

test('no command, or no subcommand: "see --help" said once', async () => {
  await usageError([], 'name a command — see dkim-relay --help');
  await usageError(['config'], 'name a config command: check — see dkim-relay config --help');
});

test('serve refuses --json and does not offer it in its help', async () => {
  await usageError(['serve', '--json'], 'serve has no --json output — see dkim-relay serve --help');
  const help = await dkimRelay(['serve', '--help'], dir);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--config/);
  assert.doesNotMatch(help.stdout, /--json/);
});

test('config check --json prints the effective configuration as JSON', async () => {
  const run = await dkimRelay(['config', 'check', '--json'], dir);
  assert.equal(run.code, 0, run.stderr);
  const config = JSON.parse(run.stdout) as { listen: { port: number }; demo: { domain: string }; delivery: { upstream: { type: string } } };
  assert.equal(config.listen.port, 2525);
  assert.equal(config.demo.domain, 'example.com');
  assert.equal(config.delivery.upstream.type, 'file');
});
