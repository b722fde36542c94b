// What handing one file operation to another thread costs the event loop:
// through libuv's thread pool (what fs does) against a worker thread of our
// own (postMessage there and back), each an unlink(2), 10 in flight, with
// the machine idle and with two threads spinning on its cores. The event
// loop's active time a round trip is the figure: it decides whether the
// spool's file operations would be cheaper on a thread of their own.
//
//   node bench/hand-off.ts [operations]
import { mkdtempSync, rmSync, unlink, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';

const N = Number(process.argv[2] ?? 3000);
const IN_FLIGHT = 10;
const dir = mkdtempSync(join(tmpdir(), 'dkim-relay-hand-off-'));

const files = (): string[] => {
  const paths = Array.from({ length: N }, (_, i) => join(dir, `f${i}`));
  for (const path of paths) writeFileSync(path, 'x');
  return paths;
};

/** Event-loop active time per operation, N operations, IN_FLIGHT at a time. */
async function loopTime(one: (path: string) => Promise<unknown>): Promise<number> {
  const paths = files();
  const before = performance.eventLoopUtilization();
  for (let i = 0; i < N; i += IN_FLIGHT) await Promise.all(paths.slice(i, i + IN_FLIGHT).map(one));
  return (performance.eventLoopUtilization(before).active * 1000) / N;
}

const worker = new Worker(
  `const { parentPort } = require('node:worker_threads');
   const { unlinkSync } = require('node:fs');
   parentPort.on('message', (path) => { try { unlinkSync(path); } catch {} parentPort.postMessage(path); });`,
  { eval: true },
);
const waiting = new Map<string, () => void>();
worker.on('message', (path: string) => {
  waiting.get(path)?.();
  waiting.delete(path);
});

try {
  for (const busy of [false, true]) {
    const spinners = busy ? [0, 1].map(() => new Worker('for (;;) {}', { eval: true })) : [];
    const pool = await loopTime((path) => new Promise((resolve) => unlink(path, resolve)));
    const own = await loopTime((path) => new Promise<void>((resolve) => (waiting.set(path, resolve), worker.postMessage(path))));
    console.log(
      `${busy ? 'two threads spinning' : 'idle machine'}: event loop ${pool.toFixed(1)} µs an unlink through libuv's pool, ` +
        `${own.toFixed(1)} µs through a worker thread`,
    );
    await Promise.all(spinners.map((s) => s.terminate()));
  }
} finally {
  await worker.terminate();
  rmSync(dir, { recursive: true, force: true });
}
