// Starting and stopping the peers' daemons: by their own PIDs only, never a
// service manager, never a process found by its name.
import { connect } from 'node:net';
import { readFileSync } from 'node:fs';
import { sleep } from '../stats.ts';

export const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    // A zombie child still answers signal 0; its state says it is gone.
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

/** SIGTERM to `pid`, SIGKILL if it is still there after `ms`. */
export async function stopByPid(pid: number, ms = 10_000): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const until = Date.now() + ms;
  while (alive(pid) && Date.now() < until) await sleep(50);
  if (alive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
}

/** Resolves once something accepts TCP connections on 127.0.0.1:`port`; throws after `ms`. */
export async function waitForPort(port: number, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect({ port, host: '127.0.0.1' });
      socket.once('connect', () => (socket.destroy(), resolve(true)));
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > until) throw new Error(`nothing listens on 127.0.0.1:${port} after ${ms / 1000} s`);
    await sleep(100);
  }
}
