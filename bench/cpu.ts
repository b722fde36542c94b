// CPU time spent, read from /proc: by the whole machine (every process, the
// kernel's work for them included) and by a family of processes. With `n`
// cores a machine can spend at most n seconds of CPU a second, so CPU time
// per message bounds the rate any run on it can reach.
import { readdirSync, readFileSync } from 'node:fs';
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
      const after = statFields(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      ticks += Number(after[11]) + Number(after[12]) + Number(after[13]) + Number(after[14]);
    } catch {
      // gone meanwhile
    }
  }
  return ticks * TICK_MS;
}

/** Where a process's CPU went, by kind of thread (/proc/PID/task/TID/stat), in milliseconds. */
export interface ThreadCpu {
  /** The event loop of the main thread. */
  main: number;
  /** JavaScript worker threads (node:worker_threads: crypto, normalization, delivery). */
  workers: number;
  /** libuv's pool: file system calls (fsync included), DNS lookups, zlib. */
  pool: number;
  /** V8's own: garbage collection and compilation helpers. */
  v8: number;
  /** Threads that ended (an idle thread stopped), and what the kernel did not assign to a live one. */
  other: number;
  /**
   * Of the live threads' time, what the kernel spent on their behalf (stime):
   * system calls, and on loopback the receiving side's TCP work as well,
   * which runs in the sender's system call. The machine's part, not the code's.
   */
  kernel: number;
}

const POOL = 'libuv-worker';
const WORKER = 'WorkerThread';

/** The threads of every process in `roots`' family, summed by kind: read before and after, the difference is a run's. */
export function threadCpuMs(roots: number[]): ThreadCpu {
  const sum: ThreadCpu = { main: 0, workers: 0, pool: 0, v8: 0, other: 0, kernel: 0 };
  for (const pid of family(roots)) {
    try {
      const total = ticksOf(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      let seen = 0;
      for (const tid of readdirSync(`/proc/${pid}/task`)) {
        const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        const ticks = ticksOf(stat);
        seen += ticks;
        sum.kernel += Number(statFields(stat)[12]) * TICK_MS;
        const kind: keyof ThreadCpu = tid === String(pid) ? 'main' : comm === WORKER ? 'workers' : comm === POOL ? 'pool' : 'v8';
        sum[kind] += ticks * TICK_MS;
      }
      sum.other += Math.max(0, total - seen) * TICK_MS;
    } catch {
      // gone meanwhile
    }
  }
  return sum;
}

/** utime + stime of a stat line (a process's or a thread's). */
function ticksOf(stat: string): number {
  const after = statFields(stat);
  return Number(after[11]) + Number(after[12]);
}

/** The fields of a /proc stat line after the command name, which may itself hold spaces and parentheses. */
function statFields(stat: string): string[] {
  return stat.split(') ').at(-1)!.split(' ');
}

export function threadCpuDelta(before: ThreadCpu, after: ThreadCpu): ThreadCpu {
  return {
    main: after.main - before.main,
    workers: after.workers - before.workers,
    pool: after.pool - before.pool,
    v8: after.v8 - before.v8,
    other: Math.max(0, after.other - before.other),
    kernel: after.kernel - before.kernel,
  };
}
