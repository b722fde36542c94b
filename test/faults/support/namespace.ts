// Starts a fault case in namespaces of its own (root only, as in CI):
// loopback is the only network, so a resolver has no route, ports are the
// case's alone, a tmpfs or bind mount it makes vanishes with it, and so does
// every process it started.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { NODE, ROOT } from '../../cli/support.ts';
import { CASES } from '../cases.ts';
import { COMPILE_CACHE } from './relay.ts';
import { skipWithout } from '../../helpers/tools.ts';

const DRIVER = join(ROOT, 'test', 'faults', 'support', 'driver.ts');
/**
 * Network and mount namespaces, and a PID namespace whose first process is
 * the driver: when it ends, or unshare is killed, every process of the case
 * (relays included) ends with it.
 */
const NAMESPACES = ['--net', '--mount', '--propagation', 'private', '--pid', '--fork', '--kill-child', '--mount-proc'];
/** Every case ends well before this; it only stops a hung one. */
const CASE_LIMIT_MS = 120_000;

export const canRun = process.getuid?.() === 0 ? skipWithout('unshare', 'ip', 'python3') || true : 'fault cases need root (network namespaces, tmpfs)';

export function casesOf(group: string) {
  return CASES.filter((c) => c.group === group);
}

export async function runCase(id: string, t?: TestContext): Promise<void> {
  const child = spawn('unshare', [...NAMESPACES, '--', NODE, DRIVER, id], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8', NODE_COMPILE_CACHE: COMPILE_CACHE },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), CASE_LIMIT_MS);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  clearTimeout(timer);
  t?.diagnostic(output.split('\n')[0] ?? '');
  assert.equal(code, 0, `fault case ${id} failed:\n${output.slice(-6000)}`);
}
