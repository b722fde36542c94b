// What the relay allocates, garbage included: loaded into the relay with
// --import, it starts V8's sampling heap profiler in the main thread, keeping
// the samples of objects already collected (the default keeps only the live
// ones, which says nothing of what the collector has to catch up with), and
// writes the profile when the process gets SIGUSR2.
//
//   BENCH_THIS_ARGS=--import=$PWD/bench/allocation-sampler.ts node bench/compare-builds.ts …
//   kill -USR2 <relay PID>      → $ALLOCATION_PROFILE_DIR (or the temporary folder)/allocations-<PID>.heapprofile
//   node bench/allocation-summary.ts <file> <messages>
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread } from 'node:worker_threads';

if (isMainThread) {
  const session = new Session();
  session.connect();
  session.post('HeapProfiler.enable');
  session.post('HeapProfiler.startSampling', {
    samplingInterval: 4096,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  process.once('SIGUSR2', () => {
    session.post('HeapProfiler.stopSampling', (err, result) => {
      if (err) return console.error(`allocation-sampler: ${err.message}`);
      const file = join(process.env.ALLOCATION_PROFILE_DIR ?? tmpdir(), `allocations-${process.pid}.heapprofile`);
      writeFileSync(file, JSON.stringify(result.profile));
    });
  });
}
