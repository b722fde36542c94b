// How CPU time grows with the input: the same work on an input eight times
// larger may take about eight times as long (quadratic work would take
// sixty-four), a gap wide enough for a busy machine's noise. Time is the CPU
// time of this process (all its threads: V8's collector and the crypto
// thread do work the input causes), not the clock on the wall, so other
// processes on a busy machine do not count. Not one thread's time: Linux
// counts a thread's CPU time (getrusage's RUSAGE_THREAD, /proc's schedstat)
// in whole scheduler ticks, 4 ms here, so a run of a few milliseconds read
// 0 or 4 ms; the process's total (RUSAGE_SELF) brings the running thread's
// own time up to date first. A ratio of times belongs here, in `npm run
// bench`, not in `npm test`: what a test checks is counted, not timed.

/** CPU milliseconds this process spent while `run` ran. */
function cpuMs(run: () => void): number {
  const before = process.cpuUsage();
  run();
  const after = process.cpuUsage(before);
  return (after.user + after.system) / 1000;
}

/** Best of three runs, in CPU milliseconds: the least disturbed (by GC, caches). */
export function fastest(run: () => void): number {
  let best = Infinity;
  for (let round = 0; round < 3; round++) best = Math.min(best, cpuMs(run));
  return best;
}

/** Linear work stays well under 64×, what quadratic work would take at 8×. */
export const LINEAR_AT_8X = 24;

/**
 * How much longer `run` takes on `make(8)` than on `make(1)`. Measured up to
 * three times, the lowest kept: quadratic work is slow every time, whereas a
 * collection of the larger input's garbage or a busy neighbour lands in one
 * measurement and not the next.
 */
export function growth<T>(make: (scale: number) => T, run: (input: T) => void, floorMs = 0.05): number {
  const small = make(1);
  const large = make(8);
  run(small); // warm the code paths first
  let lowest = Infinity;
  for (let attempt = 0; attempt < 3 && lowest >= LINEAR_AT_8X; attempt++) {
    lowest = Math.min(
      lowest,
      fastest(() => run(large)) /
        Math.max(
          fastest(() => run(small)),
          floorMs,
        ),
    );
  }
  return lowest;
}

/** CPU milliseconds this process spent while `run` ran, awaited: the work of other processes does not count. */
async function cpuMsAsync(run: () => Promise<void>): Promise<number> {
  const before = process.cpuUsage();
  await run();
  const after = process.cpuUsage(before);
  return (after.user + after.system) / 1000;
}

/**
 * growth() for asynchronous work: the CPU time of this process between start
 * and end, best of three. `floorMs`: the least time the small input is taken
 * to need, so that work too quick to time (a refusal at the first line) does
 * not turn a garbage collection of the large input into a large ratio.
 */
export async function growthAsync<T>(make: (scale: number) => T, run: (input: T) => Promise<void>, floorMs = 0.05): Promise<number> {
  const fastestAsync = async (input: T): Promise<number> => {
    let best = Infinity;
    for (let round = 0; round < 3; round++) best = Math.min(best, await cpuMsAsync(() => run(input)));
    return best;
  };
  const small = make(1);
  const large = make(8);
  await run(small);
  let lowest = Infinity;
  for (let attempt = 0; attempt < 3 && lowest >= LINEAR_AT_8X; attempt++) {
    lowest = Math.min(lowest, (await fastestAsync(large)) / Math.max(await fastestAsync(small), floorMs));
  }
  return lowest;
}
