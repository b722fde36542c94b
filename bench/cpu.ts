// CPU time spent, read from /proc: by the whole machine (every process, the
// kernel's work for them included) and by a family of processes. With `n`
// cores a machine can spend at most n seconds of CPU a second, so CPU time
// per message bounds the rate any run on it can reach.
import { readFileSync } from 'node:fs';
import { family } from './memory.ts';

const TICK_MS = 10; // USER_HZ is 100 on Linux

/** Milliseconds of CPU the machine has spent since boot, idle and I/O wait left out (/proc/stat). */
export function machineCpuMs(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal …
  const [user, nice, system, , , irq, softirq] = fields;
  return (user! + nice! + system! + irq! + softirq!) * TICK_MS;
}

/** Milliseconds of CPU of `roots` and their descendants, with what their exited children used (utime, stime, cutime, cstime). */
export function familyCpuMs(roots: number[]): number {
  let ticks = 0;
  for (const pid of family(roots)) {
    try {
      // The fields after the command name, which may itself hold spaces and parentheses.
      const after = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ').at(-1)!.split(' ');
      ticks += Number(after[11]) + Number(after[12]) + Number(after[13]) + Number(after[14]);
    } catch {
      // gone meanwhile
    }
  }
  return ticks * TICK_MS;
}
