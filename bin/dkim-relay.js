#!/usr/bin/env node
// Runs the CLI on the Node.js the project installs (node_modules/.bin/node,
// Node 24), whatever `node` comes first on PATH.
//
// `serve` runs for months under load, so it starts with memory settings of
// its own (measured in BENCHMARKS.md, "Memory"):
// - --max-semi-space-size=4: V8 sizes the young generation from the
//   machine's memory, up to 64 MiB a semi-space (128 MiB in all) on a large
//   host, and a busy relay fills it; its garbage is per-message and
//   short-lived, and 4 MiB collects it as fast. A smaller young generation
//   also starts fewer full collections: V8 begins marking the old generation
//   once the room left below its limit is not well above what the young
//   generation could promote.
// - --max-old-space-size=1536: with a limit of 2 GiB or more (the default on
//   a large host) V8 lets the old generation grow to up to 4 times its live
//   size before a full collection, below that less (about 1.8 times at
//   1.5 GiB, 1.6 at 1 GiB). The relay's JavaScript heap stays near 40 MiB even
//   with eight 25 MB messages at once (message bytes are Buffers, outside that
//   limit), so the limit is no cap on it: what it sets is the room between
//   full collections (at 1 GiB, V8 began marking every 0.3-0.5 s under load).
// - MALLOC_ARENA_MAX=2: glibc gives each thread that allocates (libuv's pool,
//   the signing threads, V8's GC helpers) an arena of its own, each keeping
//   freed memory apart.
// - NODE_COMPILE_CACHE: Node.js strips the types from our TypeScript with a
//   WebAssembly compiler that, once loaded, stays in each thread that used
//   it (17 MiB of PSS in the main thread, 12 MiB in a worker). With the
//   compile cache, the stripped code is kept on disk and the next start loads
//   it without the compiler (see compileCacheDir).
// An operator's own value (NODE_OPTIONS, node's options, the environment) wins.
import { spawn } from 'node:child_process';
import { accessSync, constants as fs, existsSync, mkdirSync } from 'node:fs';
// A namespace: the Node.js 20 this may start on has no enableCompileCache, and a named import would not load.
import * as nodeModule from 'node:module';
import { constants } from 'node:os';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const main = join(root, 'src', 'cli', 'main.ts');
const major = Number(process.versions.node.split('.')[0]);
const args = process.argv.slice(2);

const SERVE_NODE_OPTIONS = ['--max-semi-space-size=4', '--max-old-space-size=1536'];
const SERVE_ENV = { MALLOC_ARENA_MAX: '2' };
// Installed under node_modules (npm install -g), where Node.js refuses to
// strip types itself: bin/strip-types.js does it (its ExperimentalWarning
// is noise to an operator).
const TYPE_STRIPPING = root.split(sep).includes('node_modules')
  ? ['--disable-warning=ExperimentalWarning', `--import=${pathToFileURL(join(root, 'bin', 'strip-types.js')).href}`]
  : [];

/**
 * Where the compile cache lives: systemd's CacheDirectory= for the service
 * (CACHE_DIRECTORY, the service user's own), else node_modules/.cache in
 * this installation when it can be written. Never a shared folder such as
 * /tmp: another user could plant code there. Undefined: no cache.
 */
function compileCacheDir() {
  if (process.env.NODE_COMPILE_CACHE) return process.env.NODE_COMPILE_CACHE;
  const systemd = process.env.CACHE_DIRECTORY?.split(':')[0];
  const dir = systemd ? join(systemd, 'compile') : join(root, 'node_modules', '.cache', 'dkim-relay');
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    accessSync(dir, fs.W_OK);
    return dir;
  } catch {
    return undefined;
  }
}

/** The command word: the first argument that is neither an option nor the value of --config. */
function command(list) {
  for (let i = 0; i < list.length; i++) {
    if (list[i] === '--config') i++;
    else if (!list[i].startsWith('-')) return list[i];
  }
  return undefined;
}

/** Node options and environment for the process that runs `args`. */
function runtime(execArgv) {
  const env = { ...process.env };
  const cache = compileCacheDir();
  if (cache) env.NODE_COMPILE_CACHE = cache;
  const nodeOptions = TYPE_STRIPPING.filter((o) => !execArgv.includes(o));
  if (command(args) !== 'serve') return { nodeOptions, env };
  const given = [...execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].map((o) => o.split('=')[0].replaceAll('_', '-'));
  nodeOptions.push(...SERVE_NODE_OPTIONS.filter((o) => !given.includes(o.split('=')[0])));
  for (const [name, value] of Object.entries(SERVE_ENV)) env[name] ??= value;
  return { nodeOptions, env };
}

if (major >= 24) {
  const { nodeOptions, env } = runtime(process.execArgv);
  const missing = nodeOptions.length > 0 || Object.keys(SERVE_ENV).some((name) => process.env[name] !== env[name]);
  if (missing && typeof process.execve === 'function') {
    // The same process, started again with the settings: systemd's main PID and signals stay as they are.
    process.execve(process.execPath, [process.execPath, ...process.execArgv, ...nodeOptions, main, ...args], env);
  }
  // Set in the environment too, for the threads and processes the CLI starts.
  if (env.NODE_COMPILE_CACHE && nodeModule.enableCompileCache(env.NODE_COMPILE_CACHE).directory) process.env.NODE_COMPILE_CACHE = env.NODE_COMPILE_CACHE;
  process.argv.splice(1, 1, main);
  await import(main);
} else {
  const node = join(root, 'node_modules', '.bin', 'node');
  if (!existsSync(node)) {
    process.stderr.write(`dkim-relay: needs Node.js 24 or newer (this is ${process.version}) — run npm ci in ${root}\n`);
    process.exit(2);
  }
  const { nodeOptions, env } = runtime([]);
  // Signals go on to the child, so SIGTERM stops the relay, not just this wrapper. A terminal's
  // Ctrl-C reaches the child a second time through the process group: `serve` takes that as one.
  const child = spawn(node, [...nodeOptions, main, ...args], { stdio: 'inherit', env });
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? 128 + (constants.signals[signal] ?? 0)));
}
