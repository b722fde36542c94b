// A SoftHSM token of each test's own, a relay configuration that uses it, and
// the CLI and the real `serve` run against them.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, NODE, type Served } from '../../cli/support.ts';
import { send } from '../../helpers/relay-harness.ts';
import { tempDir } from '../../helpers/tmp.ts';

export const MODULE = '/usr/lib/softhsm/libsofthsm2.so';
export const PIN = '246810';

export interface Setup {
  dir: string;
  env: NodeJS.ProcessEnv;
  config: string;
  tokens: string;
  pinFile: string;
}

/** A SoftHSM token "dkim" in a folder of its own, and a relay configuration that uses it. */
export function setup(): Setup {
  const dir = tempDir('dkim-relay-hsm-');
  const tokens = join(dir, 'tokens');
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  execFileSync('mkdir', ['-p', tokens]);
  const env = { SOFTHSM2_CONF: conf };
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', 'dkim', '--pin', PIN, '--so-pin', '135791'], {
    env: { ...process.env, ...env },
    stdio: 'ignore',
  });
  const pinFile = join(dir, 'pin');
  writeFileSync(pinFile, `${PIN}\n`, { mode: 0o600 });
  const config = join(dir, 'relay.yaml');
  writeFileSync(
    config,
    `keys: {dir: ${join(dir, 'keys')}, pkcs11: {module: ${MODULE}, token: dkim, pinFile: ${pinFile}}}\n` +
      `metrics: {listen: "127.0.0.1:0"}\nrotation: {check: "off"}\nlisten: {port: 0}\n` +
      `delivery: {mode: sync, upstream: {type: file, dir: ${join(dir, 'outbox')}}}\n`,
  );
  return { dir, env, config, tokens, pinFile };
}

/** The CLI with the token's environment; resolves with its exit code and output. */
export function cli(s: Setup, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env = { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8', ...s.env };
    const child = execFile(NODE, [BIN, ...args, '--config', s.config], { cwd: s.dir, env, encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(err);
      resolve({ code: child.exitCode, stdout, stderr });
    });
  });
}

export async function ok(s: Setup, args: string[]): Promise<string> {
  const run = await cli(s, args);
  assert.equal(run.code, 0, `${args.join(' ')}: ${run.stderr}`);
  return run.stdout;
}

/** The TXT records `keys dns --format value` prints, by name. */
export async function records(s: Setup): Promise<Record<string, string>> {
  const out = await ok(s, ['keys', 'dns', '--format', 'value']);
  return Object.fromEntries(
    out
      .trim()
      .split('\n')
      .map((l) => l.split('\t') as [string, string]),
  );
}

export const MESSAGE =
  'From: a@example.com\r\nTo: b@example.net\r\nSubject: from the token\r\nDate: Sun, 6 Dec 2026 05:00:00 +0000\r\n\r\nsigned in an HSM\r\n';

export async function relay(port: number) {
  return send({ port, from: 'a@example.com', to: ['b@example.net'], raw: MESSAGE });
}

export function outbox(s: Setup): Buffer[] {
  const dir = join(s.dir, 'outbox');
  return existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith('.eml'))
        .map((f) => readFileSync(join(dir, f)))
    : [];
}

/** Every file under keys.dir, as bytes. */
export function storeFiles(s: Setup): Buffer[] {
  const dir = join(s.dir, 'keys');
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => readFileSync(join(e.parentPath, e.name)));
}

export async function stop(relayProcess: Served): Promise<void> {
  relayProcess.child.kill('SIGTERM');
  await relayProcess.exited;
}
