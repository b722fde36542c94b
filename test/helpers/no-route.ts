// Programs run in a private network namespace: loopback only, so no DNS
// server, nor anything else off this host, has a route (unshare -n). Needs
// root, which CI has; elsewhere the tests that use it are skipped with this reason.
import { execFile } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NODE } from '../cli/support.ts';
import { tempDir } from './tmp.ts';
import { skipWithout } from './tools.ts';

export const NEEDS_ROOT: string | false =
  process.getuid?.() === 0 ? skipWithout('unshare', 'nsenter', 'ip', 'python3') : 'unshare -n (a network namespace with no route) needs root';

let wrapper: string | undefined;

/** A program to give as `node` to the CLI helpers: runs Node.js in a namespace of its own with only loopback up. */
export function isolatedNode(): string {
  if (wrapper) return wrapper;
  wrapper = join(tempDir('dkim-relay-netns-'), 'node-without-route');
  writeFileSync(wrapper, `#!/bin/sh\nexec unshare -n sh -c 'ip link set lo up && exec "$0" "$@"' ${JSON.stringify(NODE)} "$@"\n`);
  chmodSync(wrapper, 0o755);
  return wrapper;
}

/** Runs `argv` in the network namespace of process `pid` (nsenter), for a client of a relay that runs there. */
export function inNetworkOf(pid: number, argv: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile('nsenter', ['-t', String(pid), '-n', ...argv], { encoding: 'utf8', timeout: 30_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(err);
      resolve({ code: child.exitCode, stdout, stderr });
    });
    child.stdin?.end(input ?? '');
  });
}
