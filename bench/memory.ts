// Peak memory of a set of processes and all their descendants, as PSS
// (proportional set size: shared pages divided among the processes sharing
// them, so a forked family is not counted twice), from /proc/PID/smaps_rollup,
// sampled every 100 ms.
import { readdirSync, readFileSync } from 'node:fs';

function children(pid: number): number[] {
  const found: number[] = [];
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const list = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      if (list) found.push(...list.split(/\s+/).map(Number));
    }
  } catch {
    // gone meanwhile
  }
  return found;
}

/** `roots` and every process below them. */
export function family(roots: number[]): number[] {
  const seen = new Set<number>();
  const queue = [...roots];
  while (queue.length > 0) {
    const pid = queue.pop()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    queue.push(...children(pid));
  }
  return [...seen];
}

/** PSS of one process in bytes; 0 once it is gone. */
export function pss(pid: number): number {
  try {
    const match = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

export const familyPss = (roots: number[]): number => family(roots).reduce((sum, pid) => sum + pss(pid), 0);

/** Samples the PSS of `roots` and their descendants every `everyMs` until stopped; returns the peak in bytes. */
export function samplePeak(roots: () => number[], everyMs = 100): { stop(): number } {
  let peak = familyPss(roots());
  const timer = setInterval(() => (peak = Math.max(peak, familyPss(roots()))), everyMs);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, familyPss(roots()));
    },
  };
}
