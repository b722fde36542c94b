// Starts a fault case in network and mount namespaces of its own (root
// only, as in CI): loopback is the only network, so a resolver has no route,
// ports are the case's alone, and a tmpfs or bind mount it makes vanishes
// with it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { NODE, ROOT } from '../../cli/support.ts';
import { CASES } from '../cases.ts';
import { COMPILE_CACHE } from './relay.ts';

const DRIVER = join(ROOT, 'test', 'faults', 'support', 'driver.ts');
/** Every case ends well before this; it only stops a hung one. */
const CASE_LIMIT_MS = 120_000;

export const canRun = process.getuid?.() === 0 ? true : 'fault cases need root (network namespaces, tmpfs)';

export function casesOf(group: string) {
  return CASES.filter((c) => c.group === group);
}

export async function runCase(id: string, t?: TestContext): Promise<void> {
  const child = spawn('unshare', ['--net', '--mount', '--propagation', 'private', '--', NODE, DRIVER, id], {
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
