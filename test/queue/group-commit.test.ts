import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import { GroupCommit } from '../../src/queue/group-commit.ts';

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A commit that records its groups; each group's "fsync" finishes when told to. */
function manualCommit() {
  const groups: number[][] = [];
  const syncs: { finish: (err?: Error) => void }[] = [];
  const commit = (items: number[]) => {
    groups.push(items);
    return new Promise<void>((resolve, reject) => syncs.push({ finish: (err) => (err ? reject(err) : resolve()) }));
  };
  return { groups, syncs, commit };
}

test('a message alone is committed in the turn it arrived, with no timer to wait for', async (t) => {
  // Timers frozen: a group that waited on one would never commit.
  mock.timers.enable({ apis: ['setTimeout'] });
  t.after(() => mock.timers.reset());
  const { groups, syncs, commit } = manualCommit();
  const batcher = new GroupCommit(commit);
  const added = batcher.add(1);
  await turn();
  assert.deepEqual(groups, [[1]]);
  syncs[0]!.finish();
  await added;
});

test('messages of one turn share a transaction, answered only once its fsync is done', async () => {
  const { groups, syncs, commit } = manualCommit();
  const batcher = new GroupCommit(commit);
  const answered: number[] = [];
  const all = Promise.all([1, 2, 3].map((n) => batcher.add(n).then(() => answered.push(n))));
  await turn();
  assert.deepEqual(groups, [[1, 2, 3]]);
  await turn();
  assert.deepEqual(answered, [], 'no answer before the fsync');
  syncs[0]!.finish();
  await all;
  assert.deepEqual(answered, [1, 2, 3]);
});

test("messages arriving during a group's fsync gather, and go together once it has finished", async () => {
  const { groups, syncs, commit } = manualCommit();
  const batcher = new GroupCommit(commit);
  const first = batcher.add(1);
  await turn();
  const later = [2, 3, 4].map((n) => batcher.add(n));
  for (let i = 0; i < 3; i++) await turn();
  assert.deepEqual(groups, [[1]], 'they would wait for the next fsync in any case');
  syncs[0]!.finish();
  await first;
  await turn();
  assert.deepEqual(groups, [[1], [2, 3, 4]]);
  syncs[1]!.finish();
  await Promise.all(later);
});

test('a failed fsync fails its group only; the messages gathered meanwhile are committed after it', async () => {
  const { groups, syncs, commit } = manualCommit();
  const batcher = new GroupCommit(commit);
  const first = batcher.add(1);
  await turn();
  const second = batcher.add(2);
  syncs[0]!.finish(new Error('EIO'));
  await assert.rejects(first, /EIO/);
  await turn();
  assert.deepEqual(groups, [[1], [2]]);
  syncs[1]!.finish();
  await second;
});

test('a full batch commits at once, even while a fsync runs', async () => {
  const { groups, syncs, commit } = manualCommit();
  const batcher = new GroupCommit(commit, { maxBatch: 2 });
  const first = batcher.add(1);
  await turn();
  const full = [2, 3].map((n) => batcher.add(n));
  assert.deepEqual(groups, [[1], [2, 3]]);
  for (const s of syncs) s.finish();
  await Promise.all([first, ...full]);
});
