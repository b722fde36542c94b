// dkim-relay under test: the real daemon as a child process, started the way
// systemd starts it (`bin/dkim-relay.js serve`, so with the launcher's memory
// settings; the launcher replaces itself with the relay, keeping its PID),
// with a generated configuration on loopback (port 0, the port read from its
// "relay listening" log line), its own key store holding one active key,
// delivering to the sink.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { txtValue } from '../src/keys/record.ts';
import { SqliteKeyStore } from '../src/keys/store.ts';
import { DOMAIN } from './message.ts';

const ROOT = join(import.meta.dirname, '..');
const MAIN = join(ROOT, 'src', 'cli', 'main.ts');
const LAUNCHER = join(ROOT, 'bin', 'dkim-relay.js');

export type DeliveryMode = 'sync' | 'queue';
export type Algorithm = 'rsa' | 'ed25519';

export interface RelaySetup {
  dir: string;
  mode: DeliveryMode;
  algorithm: Algorithm;
  sinkPort: number;
  /** Options for the Node.js that runs the relay (before the script), e.g. V8 flags to try. */
  nodeArgs?: string[];
  /** Added to the relay's environment, e.g. MALLOC_ARENA_MAX to try. */
  env?: Record<string, string>;
}

function configFor({ dir, mode, sinkPort }: RelaySetup): object {
  return {
    keys: { dir: join(dir, 'keys') },
    // 20 load sessions and the probe come from one address.
    listen: { host: '127.0.0.1', port: 0, hostname: 'relay.bench', maxClientsPerIp: 50 },
    delivery: { mode, upstream: { type: 'smtp', host: '127.0.0.1', port: sinkPort, maxConnections: 20 } },
    queue: { dir: join(dir, 'spool') },
    // Several relays run at once here; each gets a free port for its metrics.
    metrics: { listen: '127.0.0.1:0' },
    // Nothing to rotate, and no DNS query to the machine's resolver.
    rotation: { check: 'off' },
    log: { level: 'info' },
  };
}

/** Writes the configuration (JSON is YAML) and returns its path. */
function writeConfig(setup: RelaySetup): string {
  const path = join(setup.dir, `dkim-relay.${setup.mode}.yaml`);
  writeFileSync(path, JSON.stringify(configFor(setup), null, 2));
  return path;
}

/** Whether `config check` accepts the mode; otherwise the relay's own one-line reason. */
export function modeSupported(setup: RelaySetup): { ok: true } | { ok: false; reason: string } {
  const check = spawnSync(process.execPath, [MAIN, 'config', 'check', '--config', writeConfig(setup)], { encoding: 'utf8', timeout: 30_000 });
  if (check.status === 0) return { ok: true };
  return { ok: false, reason: (check.stderr || check.stdout).trim().split('\n')[0] ?? `config check exited ${check.status}` };
}

export interface RunningRelayProcess {
  pid: number;
  port: number;
  /** The metrics and status listener (Prometheus text at /metrics). */
  metricsPort: number;
  /** TXT records by name, for the independent verifier. */
  records: Record<string, string>;
  stop(): Promise<void>;
}

export async function startRelayProcess(setup: RelaySetup): Promise<RunningRelayProcess> {
  const config = writeConfig(setup);
  const store = SqliteKeyStore.open(join(setup.dir, 'keys'));
  const key = store.generate({ domain: DOMAIN, algorithm: setup.algorithm, activate: true });
  store.close();
  const records = { [`${key.selector}._domainkey.${key.domain}`]: txtValue(key) };

  const child = spawn(process.execPath, [...(setup.nodeArgs ?? []), LAUNCHER, 'serve', '--config', config], {
    cwd: setup.dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...setup.env },
  });
  let log = '';
  // BENCH_RELAY_LOG=<file>: the relay's whole log in <file>.<pid>, for tracing where a slow message waited.
  if (process.env.BENCH_RELAY_LOG) {
    const file = createWriteStream(`${process.env.BENCH_RELAY_LOG}.${child.pid}`);
    child.stdout!.pipe(file);
  }
  const ports = await new Promise<{ plain: number; metrics: number }>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error('did not log "relay listening" within 30 s')), 30_000);
    const fail = (err: Error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`dkim-relay ${setup.mode} ${setup.algorithm}: ${err.message}; its output: ${log.slice(-1500)}`));
    };
    let listening = false;
    const onData = (chunk: Buffer) => {
      if (listening) return;
      // Only the latest output is kept (for the error), so a busy log costs no memory here, and a
      // start-up that prints much first (node --trace-gc) is still read to its "relay listening".
      log = (log + chunk.toString()).slice(-20_000);
      const line = log.split('\n').find((l) => l.includes('"relay listening"'));
      if (line) {
        listening = true;
        clearTimeout(timer);
        resolve(JSON.parse(line) as { plain: number; metrics: number });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => fail(new Error(`exited with ${code}`)));
  });
  return { pid: child.pid!, port: ports.plain, metricsPort: ports.metrics, records, stop: () => stopChild(child) };
}

/** SIGTERM, and SIGKILL after 15 s: the relay finishes sessions in flight first. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

/**
 * Starts a relay once and stops it, so that the launcher's compile cache
 * holds the relay's modules: every relay measured then starts as a deployed
 * one does after its first start, without the TypeScript compiler in memory.
 */
export async function warmCompileCache(setup: Omit<RelaySetup, 'dir'>, parent: string): Promise<void> {
  const relay = await startRelayProcess({ ...setup, dir: mkdtempSync(join(parent, 'warm-')) });
  await relay.stop();
}
