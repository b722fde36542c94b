// What the real `serve` writes: JSON lines with named levels when its output
// is not a terminal, one human line per event at a terminal or with
// log.format: text, and nothing but log lines (nodemailer's console.warn
// becomes a log line too).
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../helpers/tmp.ts';
import { BIN, NODE, ROOT } from '../cli/support.ts';
import { requireTool } from '../helpers/tools.ts';

const ENV = { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8' };

function config(upstream = 'type: file'): { dir: string; file: string } {
  const dir = tempDir('dkim-relay-log-');
  const file = join(dir, 'relay.yaml');
  writeFileSync(
    file,
    `keys: {dir: ${join(dir, 'keys')}}\nmetrics: {listen: "127.0.0.1:0"}\nrotation: {check: "off"}\nlisten: {port: 0, hostname: relay.example.test}\ndelivery: {mode: sync, upstream: {${upstream}, ${upstream === 'type: file' ? `dir: ${join(dir, 'outbox')}` : 'timeoutSeconds: 5'}}}\n`,
  );
  return { dir, file };
}

/**
 * Runs `command` (serve, possibly inside a namespace) until `until` shows in
 * its output, then stops it with SIGTERM; resolves with stdout and stderr.
 */
function runUntil(command: string[], until: RegExp): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command[0]!, command.slice(1), { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no ${until} within 30 s:\n${stdout}\n${stderr}`));
    }, 30_000);
    const check = () => {
      if (until.test(stdout + stderr)) child.kill('SIGTERM');
    };
    child.stdout.on('data', (c: Buffer) => ((stdout += c.toString()), check()));
    child.stderr.on('data', (c: Buffer) => ((stderr += c.toString()), check()));
    child.once('exit', () => {
      clearTimeout(timer);
      resolve({ stdout, stderr });
    });
  });
}

test('serve to a pipe: JSON lines with named levels', async () => {
  const { file } = config();
  const { stdout, stderr } = await runUntil([NODE, BIN, 'serve', '--config', file], /"relay listening"/);
  assert.equal(stderr, '');
  const lines = stdout
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as { level: unknown; msg: string });
  assert.ok(
    lines.some((l) => l.msg === 'relay listening' && l.level === 'info'),
    stdout,
  );
  assert.ok(
    lines.some((l) => l.level === 'warn'),
    'the no-active-keys warning',
  );
  assert.ok(
    lines.every((l) => typeof l.level === 'string'),
    stdout,
  );
});

test('log.format: text gives one human line per event', async () => {
  const { file } = config();
  writeFileSync(file, `${readFileSync(file, 'utf8')}log: {format: text}\n`);
  const { stdout } = await runUntil([NODE, BIN, 'serve', '--config', file], /relay listening/);
  const listening = stdout.split('\n').find((l) => l.includes('relay listening')) ?? assert.fail(stdout);
  assert.match(
    listening,
    /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO {2}relay listening host=127\.0\.0\.1 plain=\d+ metrics=\d+ upstream="file .*" mode=sync$/,
  );
  assert.match(stdout, /^\S+Z WARN {2}no active keys: every message follows signing\.unknownDomain$/m);
  assert.doesNotMatch(stdout, /^\{/m, 'no JSON line');
});

test('serve at a terminal writes text by default', async (t) => {
  if (!requireTool(t, 'python3')) return; // its pty module plays the terminal
  const { file } = config();
  const run = await new Promise<{ output: string; code: number; timedOut: boolean }>((resolve, reject) => {
    // Ctrl-C once it listens: the terminal sends SIGINT, and serve stops.
    execFile(
      'python3',
      [join(ROOT, 'test', 'helpers', 'pty_run.py'), JSON.stringify([['relay listening', '\x03']]), NODE, BIN, 'serve', '--config', file],
      { env: ENV, encoding: 'utf8', timeout: 45_000 },
      (err, stdout) => (err ? reject(err) : resolve(JSON.parse(stdout) as { output: string; code: number; timedOut: boolean })),
    );
  });
  assert.equal(run.timedOut, false, run.output);
  assert.match(run.output, /^\S+Z INFO {2}relay listening host=127\.0\.0\.1 /m);
  assert.match(run.output, /^\S+Z INFO {2}stopped\r?$/m);
  assert.doesNotMatch(run.output, /^\{"level"/m);
});

test("nodemailer's console warning is a JSON log line, not a stray line", async (t) => {
  if (!requireTool(t, 'unshare', 'ip')) return;
  // In a namespace with only loopback, nodemailer finds "localhost" but no IPv4 network, and warns through console.warn.
  const { file } = config('type: smtp, host: localhost, port: 2');
  const { stdout, stderr } = await runUntil(
    ['unshare', '-n', 'sh', '-c', 'ip link set lo up && exec "$0" "$@"', NODE, BIN, 'serve', '--config', file],
    /Failed to resolve IPv4 addresses with current network/,
  );
  assert.equal(stderr, '');
  const lines = stdout
    .trimEnd()
    .split('\n')
    .map((l) => {
      try {
        return JSON.parse(l) as { level: string; msg: string; source?: string };
      } catch {
        return assert.fail(`not a log line: ${l}`);
      }
    });
  const warning = lines.find((l) => l.msg.includes('Failed to resolve IPv4'));
  assert.deepEqual({ level: warning?.level, source: warning?.source }, { level: 'warn', source: 'console' });
});
