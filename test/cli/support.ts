// Runs the real dkim-relay binary in a subprocess.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers/tmp.ts';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const NODE = join(ROOT, 'node_modules', '.bin', 'node');
export const BIN = join(ROOT, 'bin', 'dkim-relay.js');
/**
 * How long one CLI run may take before it is killed: a start-up takes under a
 * second, but a throttled CI host has been seen to stretch it past 30 s.
 */
export const CLI_TIMEOUT_MS = 120_000;

// V8's code cache only makes the many start-ups quicker; behaviour is unchanged.
const compileCache = tempDir('dkim-relay-ncc-');

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * `node bin/dkim-relay.js …args` in `cwd`, with no configuration leaking in from the environment.
 * `node` picks the program that runs bin/dkim-relay.js (the project's Node.js by default); `input` is its stdin.
 */
export function dkimRelay(args: string[], cwd: string, options: { node?: string; input?: string } = {}): Promise<Run> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8', NODE_COMPILE_CACHE: compileCache };
  return new Promise((resolve, reject) => {
    const child = execFile(options.node ?? NODE, [BIN, ...args], { cwd, env, encoding: 'utf8', timeout: CLI_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(err);
      resolve({ code: child.exitCode, stdout, stderr });
    });
    child.stdin?.end(options.input ?? '');
  });
}

export interface Served {
  child: ChildProcess;
  /** Everything the relay wrote so far, stdout and stderr. */
  output(): string;
  /** The plain SMTP port from the latest "relay listening" line. */
  port(): number;
  /** Resolves once `text` appears after offset `since` of the output; rejects after `ms` or at exit. */
  waitFor(text: string, ms?: number, since?: number): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL if still running. */
  kill(): void;
}

/**
 * `dkim-relay serve …args` in `cwd`, resolved once it listens. `node` picks the
 * Node.js that runs bin/dkim-relay.js (the project's by default); `detached`
 * gives it a process group of its own, as a terminal would; `env` is added to
 * its environment.
 */
export async function serve(args: string[], cwd: string, options: { node?: string; detached?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<Served> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8', NODE_COMPILE_CACHE: compileCache, ...options.env };
  const child = spawn(options.node ?? NODE, [BIN, 'serve', ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: options.detached ?? false });
  let output = '';
  const waiters = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
    for (const w of waiters) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let gone = false;
  void exited.then(() => {
    gone = true;
    for (const w of waiters) w();
  });
  const served: Served = {
    child,
    output: () => output,
    port() {
      const lines = output.split('\n').filter((l) => l.includes('"relay listening"'));
      return (JSON.parse(lines.at(-1)!) as { plain: number }).plain;
    },
    waitFor(text, ms = 20_000, since = 0) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => done(new Error(`timed out waiting for "${text}"; output:\n${output}`)), ms);
        const check = () => {
          if (output.indexOf(text, since) >= 0) done();
          else if (gone) done(new Error(`exited before "${text}"; output:\n${output}`));
        };
        const done = (err?: Error) => {
          clearTimeout(timer);
          waiters.delete(check);
          if (err) reject(err);
          else resolve();
        };
        waiters.add(check);
        check();
      });
    },
    exited,
    kill() {
      if (child.exitCode === null && child.signalCode === null) {
        try {
          if (options.detached) process.kill(-child.pid!, 'SIGKILL');
          else child.kill('SIGKILL');
        } catch {
          // already gone
        }
      }
    },
  };
  try {
    await served.waitFor('"relay listening"');
  } catch (err) {
    served.kill();
    throw err;
  }
  return served;
}
