import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { FileSync, fsyncPath, fsyncWal } from '../../src/queue/file-sync.ts';
import { tempDir } from '../helpers/tmp.ts';

/** An fsync that finishes when told to, recording when each one started. */
function manualFsync() {
  const started: { finish: (err?: Error) => void }[] = [];
  const fsync = () =>
    new Promise<void>((resolve, reject) => {
      started.push({ finish: (err) => (err ? reject(err) : resolve()) });
    });
  return { started, fsync };
}

test('callers while an fsync runs share the next one, which starts only after it', async () => {
  const { started, fsync } = manualFsync();
  const sync = new FileSync('/unused', fsync);
  const order: string[] = [];
  const first = sync.sync().then(() => order.push('first'));
  assert.equal(started.length, 1);
  const later = [1, 2, 3].map((i) => sync.sync().then(() => order.push(`later-${i}`)));
  await new Promise((r) => setImmediate(r));
  assert.equal(started.length, 1, 'the later callers may have written after the first fsync began: they wait for a second');
  started[0]!.finish();
  await first;
  await new Promise((r) => setImmediate(r));
  assert.equal(started.length, 2, 'one fsync for all three later callers');
  assert.deepEqual(order, ['first']);
  started[1]!.finish();
  await Promise.all(later);
  assert.deepEqual(order, ['first', 'later-1', 'later-2', 'later-3']);
  const alone = sync.sync();
  assert.equal(started.length, 3, 'nothing runs: a caller now starts its own at once');
  started[2]!.finish();
  await alone;
});

test('a failed fsync fails its callers, and the next caller gets a fresh one', async () => {
  const { started, fsync } = manualFsync();
  const sync = new FileSync('/unused', fsync);
  const failing = sync.sync();
  started[0]!.finish(new Error('EIO'));
  await assert.rejects(failing, /EIO/);
  const next = sync.sync();
  assert.equal(started.length, 2);
  started[1]!.finish();
  await next;
});

test('fsyncPath syncs a real file or folder and fails on one that is gone; a WAL that is gone has nothing to sync', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'queue.db-wal'), 'frames');
  await fsyncPath(join(dir, 'queue.db-wal'));
  await fsyncPath(dir);
  await assert.rejects(fsyncPath(join(dir, 'absent')), /ENOENT/, 'a spool folder that vanished is an error');
  await fsyncWal(join(dir, 'absent-wal'));
  await assert.rejects(fsyncWal(join(dir, 'queue.db-wal', 'not-a-dir')), /ENOTDIR/, 'other errors are not swallowed');
});
