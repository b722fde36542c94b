// `dkim-relay passwd`: the snippet it prints is valid configuration, and the
// hash in it accepts the password and nothing else.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config/load.ts';
import { checkPassword } from '../../src/relay/passwords.ts';
import { tempDir } from '../helpers/tmp.ts';
import { BIN, NODE } from './support.ts';

function passwd(user: string, input: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(NODE, [BIN, 'passwd', user], { cwd: tempDir(), encoding: 'utf8', timeout: 30_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(err);
      resolve({ code: child.exitCode, stdout, stderr });
    });
    child.stdin!.end(input);
  });
}

test('passwd prints an access.users entry whose scrypt hash accepts only that password', async () => {
  const run = await passwd('exchange', 'correct horse battery\n');
  assert.equal(run.code, 0, run.stderr);
  assert.doesNotMatch(run.stdout, /correct horse/, 'the password itself is never printed');
  const entry = (parse(run.stdout) as { name: string; password: string }[])[0]!;
  assert.equal(entry.name, 'exchange');
  const config = parseConfig(`access:\n  users:\n${run.stdout.split('\n').filter((l) => !l.startsWith('#')).map((l) => `    ${l}`).join('\n')}\n`, 'snippet');
  assert.equal(config.access.users[0]!.password, entry.password);
  assert.equal(await checkPassword('correct horse battery', entry.password), true);
  assert.equal(await checkPassword('correct horse batter', entry.password), false);
});

test('passwd refuses a short password with exit 2 and one line', async () => {
  const run = await passwd('exchange', 'short\n');
  assert.equal(run.code, 2);
  assert.match(run.stderr, /^dkim-relay: the password is shorter than 8 characters — choose a longer one\n$/);
});
