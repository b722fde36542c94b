// `dkim-relay passwd`: the snippet it prints is valid configuration, and the
// hash in it accepts the password and nothing else.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config/load.ts';
import { checkPassword } from '../../src/access/passwords.ts';
import { selfSignedCert, send } from '../helpers/relay-harness.ts';
import { tempDir } from '../helpers/tmp.ts';
import { BIN, CLI_TIMEOUT_MS, dkimRelay, NODE, ROOT, serve } from './support.ts';

function passwd(user: string, input: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(NODE, [BIN, 'passwd', '--', user], { cwd: tempDir(), encoding: 'utf8', timeout: CLI_TIMEOUT_MS }, (err, stdout, stderr) => {
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
  const config = parseConfig(
    `access:\n  users:\n${run.stdout
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .map((l) => `    ${l}`)
      .join('\n')}\n`,
    'snippet',
  );
  assert.equal(config.access.users[0]!.password, entry.password);
  assert.equal(await checkPassword('correct horse battery', entry.password), true);
  assert.equal(await checkPassword('correct horse batter', entry.password), false);
});

test('passwd refuses a short password with exit 2 and one line', async () => {
  const run = await passwd('exchange', 'short\n');
  assert.equal(run.code, 2);
  assert.match(run.stderr, /^dkim-relay: the password is shorter than 8 characters — choose a longer one\n$/);
});

/** The passwd output pasted under access.users, as a person would. */
function pasted(outputs: string[], more = ''): string {
  const entries = outputs.flatMap((o) =>
    o
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => `    ${l}`),
  );
  return `access:\n  networks: []\n  users:\n${entries.join('\n')}\n${more}`;
}

test("README's passwd example works exactly as printed, through dkim-relay on PATH", async () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const line = /^printf .* \| dkim-relay passwd \S+$/m.exec(readme)?.[0];
  assert.ok(line, 'README shows a passwd example');
  const password = /^printf '%s' '([^']*)'/.exec(line)![1]!;
  const dir = tempDir();
  mkdirSync(join(dir, 'bin'));
  symlinkSync(BIN, join(dir, 'bin', 'dkim-relay'));
  const run = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const env = { PATH: `${join(dir, 'bin')}:${process.env.PATH}`, HOME: process.env.HOME, LANG: 'C.UTF-8' };
    const child = execFile('sh', ['-c', line], { cwd: dir, env, encoding: 'utf8', timeout: CLI_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(err);
      resolve({ code: child.exitCode, stdout, stderr });
    });
  });
  assert.equal(run.code, 0, `${line}\n${run.stderr}`);
  writeFileSync(join(dir, 'relay.yaml'), pasted([run.stdout]));
  const check = await dkimRelay(['config', 'check', '--config', 'relay.yaml'], dir);
  assert.equal(check.code, 0, check.stderr);
  const entry = (parse(run.stdout) as { name: string; password: string }[])[0]!;
  assert.equal(await checkPassword(password, entry.password), true);
});

test('passwd --json prints the entry as an object', async () => {
  const run = await passwd('exchange', 'correct horse battery');
  const json = await new Promise<string>((resolve, reject) => {
    const child = execFile(NODE, [BIN, 'passwd', '--json', 'exchange'], { cwd: tempDir(), encoding: 'utf8', timeout: CLI_TIMEOUT_MS }, (err, stdout) =>
      err ? reject(err) : resolve(stdout),
    );
    child.stdin!.end('correct horse battery');
  });
  const entry = JSON.parse(json) as { name: string; password: string };
  assert.equal(run.code, 0);
  assert.equal(entry.name, 'exchange');
  assert.equal(await checkPassword('correct horse battery', entry.password), true);
});

const NAMES = ['scan: printer', '#x', 'yes', 'o\'brien "q"', '- dash', '&anchor', 'tab\there', ' ünïcödé '];

test('passwd output pasted into YAML reads back whatever the name, and logs in over SMTP', async () => {
  const dir = tempDir();
  const runs = await Promise.all(NAMES.map((name) => passwd(name, `password of ${name}`)));
  for (const run of runs) assert.equal(run.code, 0, run.stderr);
  const outputs = runs.map((r) => r.stdout);
  const tls = selfSignedCert(dir);
  const config = join(dir, 'relay.yaml');
  writeFileSync(
    config,
    pasted(
      outputs,
      `listen: {port: 0, tls: {key: ${tls.key}, cert: ${tls.cert}}}\nmetrics: {listen: "127.0.0.1:0"}\nkeys: {dir: ${join(dir, 'keys')}}\ndelivery: {upstream: {type: file, dir: ${join(dir, 'outbox')}}}\nrotation: {check: "off"}\n`,
    ),
  );
  const check = await dkimRelay(['config', 'check', '--json', '--config', config], dir);
  assert.equal(check.code, 0, check.stderr);
  assert.deepEqual(
    (JSON.parse(check.stdout) as { access: { users: { name: string }[] } }).access.users.map((u) => u.name),
    NAMES,
  );

  const relay = await serve(['--config', config], dir);
  try {
    const message = 'From: a@example.com\r\nTo: b@example.net\r\nSubject: scan\r\n\r\nscanned\r\n';
    for (const name of ['scan: printer', '#x']) {
      const ok = await send({
        port: relay.port(),
        from: 'a@example.com',
        to: ['b@example.net'],
        raw: message,
        tls: true,
        auth: { user: name, pass: `password of ${name}` },
      });
      assert.equal(ok.ok, true, ok.response);
    }
    const wrong = await send({
      port: relay.port(),
      from: 'a@example.com',
      to: ['b@example.net'],
      raw: message,
      tls: true,
      auth: { user: 'scan: printer', pass: 'password of #x' },
    });
    assert.deepEqual([wrong.ok, wrong.ok ? 0 : wrong.code], [false, 535]);
  } finally {
    relay.kill();
  }
});

/** `passwd USER` on a pseudo-terminal, typing `replies` at its prompts. */
function passwdOnTerminal(user: string, script: [string, string][]): Promise<{ output: string; code: number; timedOut: boolean }> {
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8' };
  return new Promise((resolve, reject) => {
    execFile(
      'python3',
      [join(ROOT, 'test', 'helpers', 'pty_run.py'), JSON.stringify(script), NODE, BIN, 'passwd', user],
      { cwd: tempDir(), env, encoding: 'utf8', timeout: CLI_TIMEOUT_MS },
      (err, stdout) => {
        if (err) return reject(err);
        resolve(JSON.parse(stdout) as { output: string; code: number; timedOut: boolean });
      },
    );
  });
}

test('passwd on a terminal asks twice without echo, and the entry it prints takes that password', async () => {
  const run = await passwdOnTerminal('exchange', [
    ['Password for exchange: ', 'correct horse battery\r'],
    ['Again: ', 'correct horse battery\r'],
  ]);
  assert.equal(run.timedOut, false, run.output);
  assert.equal(run.code, 0, run.output);
  assert.doesNotMatch(run.output, /correct horse/, `the password was echoed:\n${run.output}`);
  const hash = /password: "([^"]+)"/.exec(run.output)?.[1] ?? assert.fail(run.output);
  assert.equal(await checkPassword('correct horse battery', hash), true);
});

test('passwd on a terminal refuses two different passwords with exit 2 and one line, printing no entry', async () => {
  const run = await passwdOnTerminal('exchange', [
    ['Password for exchange: ', 'correct horse battery\r'],
    ['Again: ', 'correct horse batterz\r'],
  ]);
  assert.equal(run.timedOut, false, run.output);
  assert.equal(run.code, 2, run.output);
  assert.match(run.output, /dkim-relay: the two passwords differ — run dkim-relay passwd again and type the same password twice\r?\n$/);
  assert.doesNotMatch(run.output, /password: "/);
});
