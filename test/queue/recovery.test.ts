// Start-up recovery of each state a crash can leave, on real files and SQLite.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { QueueIndex } from '../../src/queue/queue-index.ts';
import { HOLD_FILE_MISSING, HOLD_FILE_SIZE, recoverQueue } from '../../src/queue/recovery.ts';
import { newSpoolId, Spool } from '../../src/queue/spool.ts';
import { tempDir } from '../helpers/tmp.ts';
import { envelope } from './support.ts';

const LEASE = 60_000;
const BODY = Buffer.from('Subject: x\r\n\r\nhello\r\n');

/** A spool and index as a restarted relay finds them, and a logger whose lines are kept. */
function queueAt(dir = tempDir()) {
  const spool = new Spool(dir);
  const index = QueueIndex.open(join(dir, 'queue.db'));
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(JSON.parse(String(chunk)));
      done();
    },
  });
  return { dir, spool, index, lines, logger: pino({ level: 'info' }, sink) };
}

function files(dir: string, sub: string): string[] {
  return readdirSync(join(dir, sub)).sort();
}

test('a crash after each step of intake leaves a state recovery settles: only committed messages are queued', async () => {
  const q = queueAt();
  // Crash while the data was being written (no fsync, no rename yet).
  const writing = q.spool.begin();
  await writing.write(BODY);
  // Crash after the file was synced and renamed into msg/, before the rows were committed.
  const uncommitted = await q.spool.write(BODY);
  // Crash after the commit (the 250 may or may not have reached the client).
  const committed = await q.spool.write(BODY);
  await q.index.enqueue(envelope(committed.id, committed.size));

  q.index.close(); // the process is gone; a new one opens the same spool
  const after = queueAt(q.dir);
  const report = await recoverQueue(after.spool, after.index, after.logger);

  assert.equal(report.tempRemoved, 1);
  assert.equal(report.movedToCorrupt, 1);
  assert.deepEqual(files(q.dir, 'tmp'), []);
  assert.deepEqual(files(q.dir, 'msg'), [`${committed.id}.eml`]);
  assert.deepEqual(files(q.dir, 'corrupt'), [`${uncommitted.id}.eml`]);
  assert.deepEqual(
    after.index.claimDue({ limit: 10, leaseMs: LEASE }).map((c) => c.message.id),
    [committed.id],
  );
  after.index.close();
  writing.abort(); // the dead process's descriptor, closed so the test leaves none open
});

test('recipients a crashed process was delivering are due again; delivered ones stay delivered', async () => {
  const q = queueAt();
  const stored = await q.spool.write(BODY);
  await q.index.enqueue(envelope(stored.id, stored.size, ['a@x.example', 'b@x.example']));
  const [claim] = q.index.claimDue({ limit: 10, leaseMs: 3_600_000 });
  q.index.record(claim!, [{ seq: 0, result: 'delivered', reply: { code: 250, text: 'Ok' } }]);
  q.index.close(); // died while b@ was being delivered

  const after = queueAt(q.dir);
  const report = await recoverQueue(after.spool, after.index, after.logger);
  assert.equal(report.reclaimed, 1);
  assert.deepEqual(
    after.index.show(stored.id)!.recipients.map((r) => r.state),
    ['delivered', 'queued'],
  );
  const [again] = after.index.claimDue({ limit: 10, leaseMs: LEASE });
  assert.deepEqual(
    again!.recipients.map((r) => r.address),
    ['b@x.example'],
    'the lease of the dead process is not waited for',
  );
  after.index.close();
});

test('a finished message whose removal was lost is removed again, file or not, never held', async () => {
  const q = queueAt();
  const unlinked = await q.spool.write(BODY);
  const kept = await q.spool.write(BODY);
  for (const stored of [unlinked, kept]) {
    await q.index.enqueue(envelope(stored.id, stored.size, ['a@x.example', 'b@x.example']));
  }
  for (const claim of q.index.claimDue({ limit: 10, leaseMs: LEASE })) {
    q.index.record(claim, [
      { seq: 0, result: 'delivered', reply: { code: 250, text: 'Ok' } },
      { seq: 1, result: 'bounced', reply: { code: 550, text: 'No such user' } },
    ]);
  }
  await q.spool.delete(unlinked.id); // the unlink reached the disk, the removal of the rows did not
  q.index.close();

  const after = queueAt(q.dir);
  const report = await recoverQueue(after.spool, after.index, after.logger);
  assert.equal(report.finishedRemoved, 2);
  assert.equal(report.heldMissing, 0, 'a finished message is not held for its missing file');
  assert.equal(after.index.show(unlinked.id), undefined);
  assert.equal(after.index.show(kept.id), undefined);
  assert.deepEqual(files(q.dir, 'msg'), []);
  assert.equal(after.lines.at(-1)!.level, 30, 'info, not error: nothing is wrong');
  after.index.close();
});

test('a message whose file is missing is held and named, never delivered empty; it is released once the file is back', async () => {
  const q = queueAt();
  const stored = await q.spool.write(BODY);
  await q.index.enqueue(envelope(stored.id, stored.size));
  const elsewhere = join(tempDir(), 'saved.eml');
  renameSync(q.spool.path(stored.id), elsewhere); // the spool disk lost it (or is not mounted)

  const report = await recoverQueue(q.spool, q.index, q.logger);
  assert.equal(report.heldMissing, 1);
  assert.deepEqual(report.heldIds, [stored.id]);
  assert.equal(q.index.show(stored.id)!.hold, HOLD_FILE_MISSING);
  assert.deepEqual(q.index.claimDue({ limit: 10, leaseMs: LEASE }), []);
  assert.equal(q.lines.length, 1);
  assert.equal(q.lines[0]!.level, 50, 'logged as an error');
  assert.deepEqual(q.lines[0]!.held, [stored.id]);

  renameSync(elsewhere, q.spool.path(stored.id)); // restored from backup
  const second = await recoverQueue(q.spool, q.index, q.logger);
  assert.equal(second.released, 1);
  assert.equal(q.index.show(stored.id)!.hold, null);
  assert.equal(q.index.claimDue({ limit: 10, leaseMs: LEASE }).length, 1);
  q.index.close();
});

test('a message whose file has the wrong size is held, not sent cut short', async () => {
  const q = queueAt();
  const stored = await q.spool.write(BODY);
  await q.index.enqueue(envelope(stored.id, stored.size));
  writeFileSync(q.spool.path(stored.id), BODY.subarray(0, 5));

  const report = await recoverQueue(q.spool, q.index, q.logger);
  assert.equal(report.heldWrongSize, 1);
  assert.equal(q.index.show(stored.id)!.hold, HOLD_FILE_SIZE);
  assert.deepEqual(q.index.claimDue({ limit: 10, leaseMs: LEASE }), []);
  q.index.close();
});

test("an administrator's hold survives recovery", async () => {
  const q = queueAt();
  const stored = await q.spool.write(BODY);
  await q.index.enqueue(envelope(stored.id, stored.size));
  q.index.hold(stored.id);
  const report = await recoverQueue(q.spool, q.index, q.logger);
  assert.equal(report.released, 0);
  assert.equal(q.index.show(stored.id)!.hold, 'held by administrator');
  q.index.close();
});

test('a finished message whose unlink was lost, and names that are not message files, are moved to corrupt/', async () => {
  const q = queueAt();
  const stored = await q.spool.write(BODY);
  await q.index.enqueue(envelope(stored.id, stored.size));
  q.index.remove(stored.id); // rows gone, then the crash came before the file was removed
  writeFileSync(join(q.dir, 'msg', 'notes.txt'), 'left by someone');

  const report = await recoverQueue(q.spool, q.index, q.logger);
  assert.equal(report.movedToCorrupt, 2);
  assert.deepEqual(files(q.dir, 'msg'), []);
  assert.deepEqual(files(q.dir, 'corrupt'), [`${stored.id}.eml`, 'notes.txt']);
  assert.equal(q.lines[0]!.corrupt, join(q.dir, 'corrupt'));
  q.index.close();
});

test('a clean spool gives one info line with the counts and the depth', async () => {
  const q = queueAt();
  for (let i = 0; i < 3; i++) {
    const stored = await q.spool.write(BODY);
    await q.index.enqueue(envelope(stored.id, stored.size, ['a@x.example', 'b@x.example']));
  }
  const report = await recoverQueue(q.spool, q.index, q.logger);
  assert.deepEqual(
    { ...report, heldIds: undefined },
    {
      tempRemoved: 0,
      finishedRemoved: 0,
      movedToCorrupt: 0,
      heldMissing: 0,
      heldWrongSize: 0,
      released: 0,
      reclaimed: 0,
      heldIds: undefined,
      messages: 3,
      pending: 6,
    },
  );
  assert.equal(q.lines.length, 1);
  assert.equal(q.lines[0]!.level, 30);
  assert.equal(q.lines[0]!.event, 'queue-recovery');
  assert.equal(q.lines[0]!.messages, 3);
  q.index.close();
});

test('a small message kept in queue.db has no file: recovery leaves it queued, and removes it when finished', async () => {
  const q = queueAt();
  const kept = newSpoolId();
  const finished = newSpoolId();
  q.index.enqueueMany([
    { ...envelope(kept, BODY.length), octets: BODY },
    { ...envelope(finished, BODY.length), octets: BODY },
  ]);
  const claims = q.index.claimDue({ limit: 10, leaseMs: LEASE });
  q.index.record(
    claims.find((c) => c.message.id === finished)!,
    [{ seq: 0, result: 'delivered', reply: { code: 250, text: 'Ok' } }],
  );
  q.index.record(
    claims.find((c) => c.message.id === kept)!,
    [{ seq: 0, result: 'deferred', reply: { code: 451, text: 'later' }, nextAttemptAt: Date.now() }],
  );

  q.index.close();
  const after = queueAt(q.dir);
  const report = await recoverQueue(after.spool, after.index, after.logger);
  assert.deepEqual(report.heldIds, [], 'no file is missing: its octets are in the index');
  assert.equal(report.finishedRemoved, 1);
  assert.equal(after.index.show(finished), undefined);
  assert.equal(after.index.show(kept)!.hold, null);
  assert.deepEqual(after.index.octets(kept), BODY);
  assert.deepEqual(
    after.index.claimDue({ limit: 10, leaseMs: LEASE }).map((c) => c.message.id),
    [kept],
  );
  after.index.close();
});
