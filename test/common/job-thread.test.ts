import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JobThread, type ThreadJob } from '../../src/common/job-thread.ts';

type Reply = { id: number; ok: true; doubled: number } | { id: number; ok: false; error: string };
type Job = ThreadJob<Extract<Reply, { ok: true }>>;

// Answers { n } with { doubled }, refuses a negative n, and exits on n = 0.
const WORKER = new URL(
  `data:text/javascript,${encodeURIComponent(`
    import { parentPort } from 'node:worker_threads';
    parentPort.postMessage({ hello: true });
    parentPort.on('message', ({ id, n }) => {
      if (n === 0) process.exit(7);
      parentPort.postMessage(n < 0 ? { id, ok: false, error: 'negative' } : { id, ok: true, doubled: 2 * n });
    });
  `)}`,
);

function ask(thread: JobThread<Reply, Job>, id: number, n: number): Promise<number> {
  return new Promise((resolve, reject) => thread.post(id, { resolve: (reply) => resolve(reply.doubled), reject }, { id, n }));
}

test('jobs are answered by id; a refusal rejects its job; other messages and the exit go to the owner with the jobs left', async () => {
  const others: unknown[] = [];
  let exited: (code: number) => void = () => {};
  const exit = new Promise<number>((resolve) => (exited = resolve));
  const thread = new JobThread<Reply, Job>(WORKER, {}, { message: (m) => others.push(m), exit: (code) => exited(code) });
  assert.deepEqual(await Promise.all([ask(thread, 1, 2), ask(thread, 2, 5)]), [4, 10]);
  await assert.rejects(ask(thread, 3, -1), /negative/);
  assert.equal(thread.jobs.size, 0);
  assert.deepEqual(others, [{ hello: true }]);
  const stranded = ask(thread, 4, 0);
  assert.equal(await exit, 7);
  assert.deepEqual([...thread.jobs.keys()], [4], 'the job the thread died with is left for the owner');
  thread.jobs.get(4)!.reject(new Error('thread died'));
  await assert.rejects(stranded, /thread died/);
});
