// Complexity checks without wall-clock limits. Absolute speed belongs to
// `npm run bench`; a test only checks how the work grows: the same input at
// four times the size may take about four times as long (quadratic work would
// take sixteen), which holds on a slow or busy machine too.

/** Best of three runs, in milliseconds: the least disturbed by other processes. */
export function fastest(run: () => void): number {
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    const started = performance.now();
    run();
    best = Math.min(best, performance.now() - started);
  }
  return best;
}

/** How much longer `run` takes on `make(factor)` than on `make(1)`. */
export function growth<T>(make: (scale: number) => T, run: (input: T) => void, factor = 4): number {
  const small = make(1);
  const large = make(factor);
  run(small); // warm the code paths first
  return fastest(() => run(large)) / Math.max(fastest(() => run(small)), 0.05);
}

/** Linear work stays well under 16×, what quadratic work would take at 4×. */
export const LINEAR_AT_4X = 10;
