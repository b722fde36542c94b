// The queue index on real SQLite files: schema, group commit, claims and
// leases, results, administration, and a full disk.
import { bufferOctets, fileOctets, heldOctets, joinOctets, readOctets } from '../../src/message/octets.ts';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, readdirSync, readFileSync, statSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { UserError } from '../../src/common/errors.ts';
import { acceptMessage, INLINE_MAX_SIZE } from '../../src/queue/accept.ts';
import { DUE_RECIPIENTS, QueueIndex, type Claim } from '../../src/queue/queue-index.ts';
import { QUEUE_SCHEMA_VERSION } from '../../src/queue/queue-schema.ts';
import { newSpoolId, Spool } from '../../src/queue/spool.ts';
import { SpoolUnavailableError } from '../../src/common/spool-error.ts';
import { tempDir } from '../helpers/tmp.ts';
import { envelope, smallDisk, walCommits } from './support.ts';

const T0 = Date.UTC(2026, 10, 22, 10, 0, 0);
const LEASE = 10 * 60_000;

function clock(start = T0) {
  const c = { now: start, tick: (ms: number) => (c.now += ms) };
  return c;
}

function openIndex(dir = tempDir(), now = () => T0, extra = {}) {
  return QueueIndex.open(join(dir, 'queue.db'), { now, ...extra });
}

function states(index: QueueIndex, id: string) {
  return index.show(id)!.recipients.map((r) => r.state);
}

test('queue.db is created 0600 in WAL mode with synchronous=FULL and a numbered schema', () => {
  const dir = tempDir();
  const index = openIndex(dir);
  assert.equal(statSync(join(dir, 'queue.db')).mode & 0o777, 0o600);
  assert.equal(index.db.pragma('journal_mode', { simple: true }), 'wal');
  assert.equal(index.db.pragma('synchronous', { simple: true }), 2);
  assert.equal(index.db.pragma('user_version', { simple: true }), QUEUE_SCHEMA_VERSION);
  index.close();

  const again = openIndex(dir); // reopening an existing index changes nothing
  assert.equal(again.db.pragma('user_version', { simple: true }), QUEUE_SCHEMA_VERSION);
  again.close();
});

test('an index written by a newer release is refused with a one-line reason', () => {
  const dir = tempDir();
  const db = new Database(join(dir, 'queue.db'));
  db.pragma(`user_version = ${QUEUE_SCHEMA_VERSION + 1}`);
  db.close();
  assert.throws(
    () => openIndex(dir),
    (err: unknown) => err instanceof UserError && /newer than this dkim-relay knows/.test(err.toLine()),
  );
});

test('messages enqueued together share one transaction, and each resolves only after it committed', async () => {
  const dir = tempDir();
  const commits: string[][] = [];
  const index = openIndex(dir, Date.now, { onCommit: (ids: string[]) => commits.push(ids), groupCommit: { maxDelayMs: 20 } });
  const reader = new Database(join(dir, 'queue.db'), { readonly: true });
  const visible = (id: string) => reader.prepare('SELECT COUNT(*) FROM recipients WHERE message_id = ?').pluck().get(id) as number;

  const ids = Array.from({ length: 5 }, () => newSpoolId());
  const seenAtResolve: number[] = [];
  await Promise.all(
    ids.map((id) =>
      index.enqueue(envelope(id, 100, ['x@example.net', 'y@example.net'])).then(() => {
        seenAtResolve.push(visible(id)); // read through another connection: committed, not merely written
      }),
    ),
  );

  assert.deepEqual(commits, [ids]);
  assert.deepEqual(seenAtResolve, [2, 2, 2, 2, 2]);

  // One awaited at a time: a transaction each.
  for (const id of [newSpoolId(), newSpoolId()]) await index.enqueue(envelope(id, 1));
  assert.equal(commits.length, 3);
  reader.close();
  index.close();
});

test('an intake group is answered only once one fsync of the WAL, in the thread pool, has finished', async () => {
  const dir = tempDir();
  const fsyncs: { path: string; finish: (err?: Error) => void }[] = [];
  const fsync = (path: string) => new Promise<void>((resolve, reject) => fsyncs.push({ path, finish: (err) => (err ? reject(err) : resolve()) }));
  const index = openIndex(dir, Date.now, { fsync, groupCommit: { maxDelayMs: 5 } });
  const reader = new Database(join(dir, 'queue.db'), { readonly: true });
  const answered: string[] = [];
  const ids = [newSpoolId(), newSpoolId(), newSpoolId()];
  const all = Promise.all(ids.map((id) => index.enqueue(envelope(id, 1)).then(() => answered.push(id))));
  for (let i = 0; i < 100 && fsyncs.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(
    fsyncs.map((f) => f.path),
    [join(dir, 'queue.db-wal')],
    'one fsync for the group',
  );
  assert.equal(reader.prepare('SELECT COUNT(*) FROM messages').pluck().get(), 3, 'committed');
  // The group is committed and its fsync asked for: what could answer it now has run once the event loop has gone round.
  for (let turn = 0; turn < 3; turn++) await new Promise(setImmediate);
  assert.deepEqual(answered, [], 'no 250 before the disk has it');
  fsyncs[0]!.finish();
  await all;
  assert.deepEqual(answered, ids);

  const failing = index.enqueue(envelope(newSpoolId(), 1));
  for (let i = 0; i < 100 && fsyncs.length === 1; i++) await new Promise((r) => setTimeout(r, 5));
  fsyncs[1]!.finish(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }));
  await assert.rejects(failing, (err: Error) => err instanceof SpoolUnavailableError, 'a failed fsync is a spool problem: 452, never 250');
  reader.close();
  index.close();
});

test('a full batch commits at once, without waiting for the delay', async () => {
  const commits: number[] = [];
  const index = openIndex(tempDir(), Date.now, { onCommit: (ids: string[]) => commits.push(ids.length), groupCommit: { maxDelayMs: 60_000, maxBatch: 3 } });
  await Promise.all([1, 2, 3].map(() => index.enqueue(envelope(newSpoolId(), 1))));
  assert.deepEqual(commits, [3]);
  index.close();
});

test('one bad message in a group fails alone; the others are committed', async () => {
  const index = openIndex(tempDir(), Date.now, { groupCommit: { maxDelayMs: 20 } });
  const good = [newSpoolId(), newSpoolId()];
  const results = await Promise.allSettled([
    index.enqueue(envelope(good[0]!, 1)),
    index.enqueue(envelope(newSpoolId(), 1, [])),
    index.enqueue(envelope(good[1]!, 1)),
  ]);
  assert.deepEqual(
    results.map((r) => r.status),
    ['fulfilled', 'rejected', 'fulfilled'],
  );
  assert.deepEqual(
    index.allMessages().map((m) => m.id),
    good,
  );
  index.close();
});

test('due recipients are claimed with a lease, results recorded per recipient, retries come due', () => {
  const c = clock();
  const index = openIndex(tempDir(), () => c.now);
  const id = newSpoolId();
  index.enqueueMany([envelope(id, 42, ['a@x.example', 'b@x.example', 'c@x.example'], { ret: 'HDRS', envid: 'QQ314159' })]);

  const [claim, ...more] = index.claimDue({ limit: 10, leaseMs: LEASE });
  assert.equal(more.length, 0);
  assert.equal(claim!.message.id, id);
  assert.equal(claim!.message.ret, 'HDRS');
  assert.equal(claim!.message.envid, 'QQ314159');
  assert.equal(claim!.leaseUntil, T0 + LEASE);
  assert.deepEqual(
    claim!.recipients.map((r) => r.address),
    ['a@x.example', 'b@x.example', 'c@x.example'],
  );
  assert.deepEqual(states(index, id), ['delivering', 'delivering', 'delivering']);
  assert.deepEqual(index.claimDue({ limit: 10, leaseMs: LEASE }), [], 'a claimed recipient is not claimed twice');

  c.tick(2_000);
  const changed = index.record(claim!, [
    { seq: 0, result: 'delivered', reply: { code: 250, enhanced: '2.0.0', text: 'Ok' } },
    { seq: 1, result: 'deferred', reply: { code: 451, enhanced: '4.3.0', text: 'try later' }, nextAttemptAt: c.now + 60_000 },
    { seq: 2, result: 'bounced', reply: { code: 550, enhanced: '5.1.1', text: 'no such user' } },
  ]);
  assert.equal(changed, 3);
  const shown = index.show(id)!;
  assert.deepEqual(
    shown.recipients.map((r) => [r.state, r.attempts, r.lastReply?.code, r.lastReply?.enhanced]),
    [
      ['delivered', 1, 250, '2.0.0'],
      ['deferred', 1, 451, '4.3.0'],
      ['bounced', 1, 550, '5.1.1'],
    ],
  );
  assert.equal(shown.recipients[1]!.nextAttemptAt, T0 + 62_000);

  c.tick(30_000);
  assert.deepEqual(index.claimDue({ limit: 10, leaseMs: LEASE }), [], 'not due before its next attempt');
  c.tick(30_000);
  const [retry] = index.claimDue({ limit: 10, leaseMs: LEASE });
  assert.deepEqual(
    retry!.recipients.map((r) => [r.seq, r.attempts]),
    [[1, 1]],
  );
  index.close();
});

test('a claim whose lease ran out (a crashed attempt) is due again, and the stale claim can no longer record', () => {
  const c = clock();
  const index = openIndex(tempDir(), () => c.now);
  const id = newSpoolId();
  index.enqueueMany([envelope(id, 1)]);
  const [first] = index.claimDue({ limit: 10, leaseMs: LEASE });

  c.tick(LEASE - 1);
  assert.deepEqual(index.claimDue({ limit: 10, leaseMs: LEASE }), []);
  c.tick(1);
  const [second] = index.claimDue({ limit: 10, leaseMs: LEASE });
  assert.equal(second!.message.id, id);
  assert.notEqual(second!.token, first!.token);

  const ok = { seq: 0, result: 'delivered', reply: { code: 250, text: 'Ok' } } as const;
  assert.equal(index.record(first!, [ok]), 0);
  assert.equal(index.record(second!, [ok]), 1);
  assert.deepEqual(states(index, id), ['delivered']);
  index.close();
});

test('claims take the oldest due messages first, at most `limit` of them', () => {
  const c = clock();
  const index = openIndex(tempDir(), () => c.now);
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    ids.push(newSpoolId());
    index.enqueueMany([envelope(ids[i]!, 1)]);
    c.tick(1000);
  }
  const claims = index.claimDue({ limit: 2, leaseMs: LEASE });
  assert.deepEqual(
    claims.map((cl) => cl.message.id),
    ids.slice(0, 2),
  );
  assert.deepEqual(
    index.claimDue({ limit: 10, leaseMs: LEASE }).map((cl) => cl.message.id),
    ids.slice(2),
  );
  index.close();
});

test('a message with several due recipients is one claim; held messages due earlier do not use up the limit', () => {
  const c = clock();
  const index = openIndex(tempDir(), () => c.now);
  const held = [newSpoolId(), newSpoolId(), newSpoolId()];
  for (const id of held) {
    index.enqueueMany([envelope(id, 1)]);
    index.hold(id);
  }
  c.tick(1000);
  const [wide, narrow] = [newSpoolId(), newSpoolId()];
  index.enqueueMany([envelope(wide, 1, ['a@example.net', 'b@example.net', 'c@example.net'])]);
  c.tick(1000);
  index.enqueueMany([envelope(narrow, 1)]);
  const claims = index.claimDue({ limit: 2, leaseMs: LEASE });
  assert.deepEqual(
    claims.map((cl) => [cl.message.id, cl.recipients.length, cl.signingDomain]),
    [
      [wide, 3, 'example.com'],
      [narrow, 1, 'example.com'],
    ],
  );
  index.close();
});

test('the due search reads the due recipients in order from their index, never the whole queue', () => {
  const index = openIndex();
  const plan = (index.db.prepare(`EXPLAIN QUERY PLAN ${DUE_RECIPIENTS}`).all(T0) as { detail: string }[]).map((row) => row.detail);
  assert.ok(
    plan.some((d) => d.includes('USING INDEX recipients_due')),
    plan.join('; '),
  );
  assert.ok(!plan.some((d) => /TEMP B-TREE|^SCAN/.test(d)), plan.join('; '));
  index.close();
});

test('a look that finds nothing due takes no write lock: another writer holding it does not stop it', () => {
  const c = clock();
  const dir = tempDir();
  const index = openIndex(dir, () => c.now, { busyTimeoutMs: 20 });
  const other = new Database(join(dir, 'queue.db'));
  try {
    index.enqueueMany([envelope('m1', 10)]);
    assert.equal(index.claimDue({ limit: 5, leaseMs: LEASE }).length, 1);
    other.exec('BEGIN IMMEDIATE'); // as `dkim-relay queue delete` holds the write lock for a moment
    assert.deepEqual(index.claimDue({ limit: 5, leaseMs: LEASE }), [], 'the claimed message is not due');
    c.tick(LEASE + 1);
    assert.throws(() => index.claimDue({ limit: 5, leaseMs: LEASE }), /locked|busy/i, 'a lease run out is due, and claiming it needs the lock');
    other.exec('ROLLBACK');
    assert.equal(index.claimDue({ limit: 5, leaseMs: LEASE }).length, 1);
  } finally {
    other.close();
    index.close();
  }
});

test('held messages are never claimed until released; retry makes waiting recipients due now', () => {
  const c = clock();
  const index = openIndex(tempDir(), () => c.now);
  const id = newSpoolId();
  index.enqueueMany([envelope(id, 1)]);
  assert.equal(index.hold(id), true);
  assert.equal(index.show(id)!.hold, 'held by administrator');
  assert.deepEqual(
    index.list({ held: true }).map((m) => m.id),
    [id],
  );
  assert.deepEqual(index.list({ held: false }), []);
  assert.deepEqual(index.claimDue({ limit: 10, leaseMs: LEASE }), []);

  assert.equal(index.release(id), true);
  assert.equal(index.release(id), false, 'releasing twice changes nothing');
  const [claim] = index.claimDue({ limit: 10, leaseMs: LEASE });
  index.record(claim!, [{ seq: 0, result: 'deferred', reply: { code: 421, text: 'busy' }, nextAttemptAt: c.now + 3_600_000 }]);
  assert.deepEqual(index.claimDue({ limit: 10, leaseMs: LEASE }), []);

  assert.equal(index.retry(id), 1);
  assert.equal(index.claimDue({ limit: 10, leaseMs: LEASE }).length, 1);
  index.close();
});

test('a claim given back, or left by a crashed process, is due again at once without counting an attempt', () => {
  const index = openIndex(tempDir());
  const [a, b] = [newSpoolId(), newSpoolId()];
  index.enqueueMany([envelope(a, 1), envelope(b, 1)]);
  const claims = index.claimDue({ limit: 10, leaseMs: LEASE });
  assert.equal(index.releaseClaim(claims[0]!), 1);
  assert.deepEqual(states(index, a), ['queued']);
  assert.deepEqual(states(index, b), ['delivering']);
  assert.equal(index.resetDelivering(), 1);
  assert.deepEqual(states(index, b), ['queued']);
  assert.deepEqual(
    index.claimDue({ limit: 10, leaseMs: LEASE }).map((cl) => cl.recipients[0]!.attempts),
    [0, 0],
  );
  index.close();
});

test('finished messages (every recipient delivered or bounced) are listed, then removed with all their rows', () => {
  const index = openIndex(tempDir());
  const [done, open] = [newSpoolId(), newSpoolId()];
  index.enqueueMany([envelope(done, 1, ['a@x.example', 'b@x.example']), envelope(open, 1)]);
  const claims = index.claimDue({ limit: 10, leaseMs: LEASE });
  const mine = claims.find((cl) => cl.message.id === done)!;
  index.record(mine, [
    { seq: 0, result: 'delivered', reply: { code: 250, text: 'Ok' } },
    { seq: 1, result: 'bounced', reply: { code: 550, text: 'unknown' } },
  ]);
  assert.deepEqual(index.finishedMessages(10), [done]);
  assert.deepEqual(index.finishedCounts(done), { delivered: 1, bounced: 1 });
  assert.equal(index.finishedCounts(open), null, 'a recipient still waits');

  assert.equal(index.remove(done), true);
  assert.equal(index.show(done), undefined);
  assert.equal(index.db.prepare('SELECT COUNT(*) FROM recipients WHERE message_id = ?').pluck().get(done), 0);
  assert.equal(index.db.prepare('SELECT COUNT(*) FROM message_signatures WHERE message_id = ?').pluck().get(done), 0);
  assert.deepEqual(index.finishedMessages(10), []);
  index.close();
});

test('the last results of an attempt remove a finished message in their transaction, counting earlier results; anything else is only recorded', async () => {
  const c = clock();
  const index = openIndex(tempDir(), () => c.now);
  const ok = (seq: number) => ({ seq, result: 'delivered', reply: { code: 250, text: 'Ok' } }) as const;
  const refused = (seq: number) => ({ seq, result: 'bounced', reply: { code: 550, text: 'unknown' } }) as const;
  const later = (seq: number) => ({ seq, result: 'deferred', reply: { code: 451, text: 'later' }, nextAttemptAt: c.now + 60_000 }) as const;
  const rows = (id: string) => index.db.prepare('SELECT COUNT(*) FROM recipients WHERE message_id = ?').pluck().get(id);
  const claimOf = (id: string) => index.claimDue({ limit: 10, leaseMs: LEASE }).find((cl) => cl.message.id === id)!;
  // Row updates counted by a trigger: a message that leaves is deleted, its rows not rewritten first.
  index.db.exec(`CREATE TEMP TABLE updates (n INTEGER); INSERT INTO updates VALUES (0);
    CREATE TEMP TRIGGER count_updates AFTER UPDATE ON main.recipients BEGIN UPDATE updates SET n = n + 1; END;`);
  const updates = () => index.db.prepare('SELECT n FROM updates').pluck().get() as number;

  // Every recipient in this claim, all final: removed with all its rows.
  const whole = newSpoolId();
  index.enqueueMany([envelope(whole, 1, ['a@x.example', 'b@x.example'])]);
  const wholeClaim = claimOf(whole);
  const before = updates();
  assert.deepEqual(await index.recordFinalSoon(wholeClaim, [ok(0), refused(1)]), { delivered: 1, bounced: 1 });
  assert.equal(updates(), before, 'rows updated before their deletion');
  assert.equal(index.show(whole), undefined);
  assert.equal(rows(whole), 0);
  assert.equal(index.db.prepare('SELECT COUNT(*) FROM message_signatures WHERE message_id = ?').pluck().get(whole), 0);

  // Results of an earlier attempt count in the totals.
  const retried = newSpoolId();
  index.enqueueMany([envelope(retried, 1, ['a@x.example', 'b@x.example', 'c@x.example'])]);
  index.record(claimOf(retried), [ok(0), later(1), refused(2)]);
  c.tick(60_000);
  assert.deepEqual(await index.recordFinalSoon(claimOf(retried), [ok(1)]), { delivered: 2, bounced: 1 });
  assert.equal(index.show(retried), undefined);

  // A deferred result: recorded, the message stays.
  const waiting = newSpoolId();
  index.enqueueMany([envelope(waiting, 1, ['a@x.example', 'b@x.example'])]);
  assert.equal(await index.recordFinalSoon(claimOf(waiting), [ok(0), later(1)]), null);
  assert.deepEqual(states(index, waiting), ['delivered', 'deferred']);

  // A recipient the claim holds without a result here: recorded, the message stays.
  const partial = newSpoolId();
  index.enqueueMany([envelope(partial, 1, ['a@x.example', 'b@x.example'])]);
  assert.equal(await index.recordFinalSoon(claimOf(partial), [ok(0)]), null);
  assert.deepEqual(states(index, partial), ['delivered', 'delivering']);

  // A stale claim (its lease ran out and another attempt holds the recipient): nothing changes.
  const stale = newSpoolId();
  index.enqueueMany([envelope(stale, 1)]);
  const first = claimOf(stale);
  c.tick(LEASE);
  const second = claimOf(stale);
  assert.equal(await index.recordFinalSoon(first, [ok(0)]), null);
  assert.deepEqual(states(index, stale), ['delivering']);
  assert.deepEqual(await index.recordFinalSoon(second, [ok(0)]), { delivered: 1, bounced: 0 });
  assert.equal(index.show(stale), undefined);
  index.close();
});

test('the last results of attempts ending in one turn are committed in one transaction, each with its own answer', async () => {
  const dir = tempDir();
  const c = clock();
  const index = openIndex(dir, () => c.now);
  index.db.pragma('wal_autocheckpoint = 0'); // the WAL keeps every commit of the test
  const ok = (seq: number) => ({ seq, result: 'delivered', reply: { code: 250, text: 'Ok' } }) as const;
  const later = (seq: number) => ({ seq, result: 'deferred', reply: { code: 451, text: 'later' }, nextAttemptAt: c.now + 60_000 }) as const;
  const stale = newSpoolId();
  index.enqueueMany([envelope(stale, 1)]);
  const [first] = index.claimDue({ limit: 10, leaseMs: LEASE });
  c.tick(LEASE); // its lease runs out: the next claim takes it over
  const ids = Array.from({ length: 4 }, () => newSpoolId());
  index.enqueueMany(ids.map((id) => envelope(id, 1, ['a@x.example', 'b@x.example'])));
  const claims = index.claimDue({ limit: 10, leaseMs: LEASE });
  const claimOf = (id: string) => claims.find((cl) => cl.message.id === id)!;
  const before = walCommits(join(dir, 'queue.db-wal'));

  const results = await Promise.all([
    index.recordFinalSoon(claimOf(ids[0]!), [ok(0), ok(1)]),
    index.recordFinalSoon(claimOf(ids[1]!), [ok(0), later(1)]),
    index.recordFinalSoon(claimOf(ids[2]!), [ok(0), ok(1)]),
    index.recordFinalSoon(first!, [ok(0)]),
  ]);

  assert.equal(walCommits(join(dir, 'queue.db-wal')) - before, 1, 'one transaction for the four');
  assert.deepEqual(results, [{ delivered: 2, bounced: 0 }, null, { delivered: 2, bounced: 0 }, null]);
  assert.equal(index.show(ids[0]!), undefined, 'finished: removed');
  assert.deepEqual(states(index, ids[1]!), ['delivered', 'deferred'], 'a deferred recipient: recorded, kept');
  assert.deepEqual(states(index, ids[3]!), ['delivering', 'delivering'], 'no result given: untouched');
  assert.deepEqual(states(index, stale), ['delivering'], 'a lease run out: the newer claim holds it');
  assert.deepEqual(await index.recordFinalSoon(claimOf(stale), [ok(0)]), { delivered: 1, bounced: 0 });
  index.close();
});

test('depth, oldest age, list counts and "is a key still needed" answer from the rows', () => {
  const c = clock();
  const index = openIndex(tempDir(), () => c.now);
  assert.deepEqual(index.depth(), { messages: 0, pending: 0, oldestReceivedAt: null });
  const [a, b] = [newSpoolId(), newSpoolId()];
  index.enqueueMany([
    envelope(a, 10, ['x@y.example', 'z@y.example'], {
      signatures: [
        { domain: 'Example.COM', selector: 's1' },
        { domain: 'example.com', selector: 'ed1' },
      ],
    }),
  ]);
  c.tick(5000);
  index.enqueueMany([envelope(b, 20, ['x@y.example'], { signatures: [{ domain: 'example.org', selector: 's9' }] })]);
  const [claim] = index.claimDue({ limit: 1, leaseMs: LEASE });
  index.record(claim!, [{ seq: 0, result: 'delivered', reply: { code: 250, text: 'Ok' } }]);

  assert.deepEqual(index.depth(), { messages: 2, pending: 2, oldestReceivedAt: T0 });
  assert.deepEqual(
    index.list().map((m) => [m.id, m.recipients, m.pending, m.size]),
    [
      [a, 2, 1, 10],
      [b, 1, 1, 20],
    ],
  );
  assert.deepEqual(
    index.list({ limit: 1, offset: 1 }).map((m) => m.id),
    [b],
  );
  assert.equal(index.isSignedWith('example.com', 's1'), true);
  assert.equal(index.isSignedWith('EXAMPLE.com', 'ed1'), true);
  assert.equal(index.isSignedWith('example.com', 's2'), false);
  assert.equal(index.isSignedWith('example.org', 's9'), true);
  assert.equal(index.oldestSignedWith('example.com', 's1'), T0);
  assert.equal(index.oldestSignedWith('example.org', 's9'), T0 + 5000);
  assert.equal(index.oldestSignedWith('example.com', 's2'), null);
  index.remove(b);
  assert.equal(index.isSignedWith('example.org', 's9'), false);
  assert.equal(index.oldestSignedWith('example.org', 's9'), null);
  index.close();
});

test('acceptMessage: a small message goes into the index with its rows, a larger one is a file; either with its rows or not at all', async () => {
  const dir = tempDir();
  const spool = new Spool(dir);
  const index = openIndex(dir);
  const small = Buffer.from('Subject: x\r\n\r\nhi\r\n');
  const stored = await acceptMessage({ spool, index }, bufferOctets(small), {
    sender: '',
    client: '192.0.2.1',
    signatures: [],
    recipients: [{ address: 'a@b.example', notify: ['FAILURE', 'DELAY'], orcpt: 'rfc822;a@b.example' }],
  });
  const shown = index.show(stored.id)!;
  assert.equal(shown.size, 18);
  assert.equal(shown.storedIn, 'index');
  assert.deepEqual(index.octets(stored.id), small);
  assert.deepEqual(
    shown.recipients.map((r) => [r.notify, r.orcpt]),
    [[['FAILURE', 'DELAY'], 'rfc822;a@b.example']],
  );
  assert.deepEqual(readdirSync(join(dir, 'msg')), [], 'no file for a small message');

  // One octet over the limit: a file, and nothing in the row.
  const head = (subject: string) => Buffer.from(`Subject: ${subject}\r\n\r\n`);
  const large = Buffer.concat([head('y'), Buffer.alloc(INLINE_MAX_SIZE + 1 - head('y').length, 'a')]);
  assert.equal(large.length, INLINE_MAX_SIZE + 1);
  const filed = await acceptMessage({ spool, index }, bufferOctets(large), {
    sender: '',
    client: 'c',
    signatures: [],
    recipients: [{ address: 'a@b.example' }],
  });
  assert.equal(index.show(filed.id)!.storedIn, 'file');
  assert.equal(index.octets(filed.id), undefined);
  assert.deepEqual(readdirSync(join(dir, 'msg')), [`${filed.id}.eml`]);
  assert.deepEqual(readFileSync(join(dir, 'msg', `${filed.id}.eml`)), large);
  // At the limit: still in the index.
  const atLimit = Buffer.concat([head('z'), Buffer.alloc(INLINE_MAX_SIZE - head('z').length, 'b')]);
  assert.equal(atLimit.length, INLINE_MAX_SIZE);
  const kept = await acceptMessage({ spool, index }, bufferOctets(atLimit), {
    sender: '',
    client: 'c',
    signatures: [],
    recipients: [{ address: 'a@b.example' }],
  });
  assert.deepEqual(index.octets(kept.id), atLimit);

  for (const octets of [Buffer.from('x'), large]) {
    await assert.rejects(acceptMessage({ spool, index }, bufferOctets(octets), { sender: '', client: 'c', signatures: [], recipients: [] }), /no recipients/);
  }
  assert.deepEqual(readdirSync(join(dir, 'msg')), [`${filed.id}.eml`], 'the file of the refused large message is gone');
  assert.deepEqual(
    index.allMessages().map((m) => m.id),
    [stored.id, filed.id, kept.id].sort(),
    'no rows of the refused messages',
  );
  index.close();
});

test('acceptMessage: messages held in memory in parts, committed together, are each stored whole, and a claim made at intake keeps their parts', async () => {
  const dir = tempDir();
  const spool = new Spool(dir);
  const index = openIndex(dir);
  const claims: Claim[] = [];
  index.claimOnIntake({ leaseMs: 60_000, room: () => 20, take: (taken) => claims.push(...taken) });
  // Parts of different sizes, each message's own: the index puts each together in one buffer in turn.
  const parts = (n: number) => [Buffer.from(`Received: from c${n}\r\n`), Buffer.from(`Subject: ${n}\r\n\r\n`), Buffer.alloc(1000 * n + 1, String(n % 10))];
  const messages = Array.from({ length: 20 }, (_, n) => parts(n));
  const stored = await Promise.all(
    messages.map((p) =>
      acceptMessage({ spool, index }, joinOctets(...p.map(bufferOctets)), {
        sender: '',
        client: 'c',
        signatures: [],
        recipients: [{ address: 'a@b.example' }],
      }),
    ),
  );
  assert.ok(walCommits(join(dir, 'queue.db-wal')) < 20, 'committed together');
  stored.forEach((s, n) => {
    assert.deepEqual(index.octets(s.id), Buffer.concat(messages[n]!), `message ${n}`);
    assert.equal(s.size, Buffer.concat(messages[n]!).length);
  });
  assert.equal(claims.length, 20);
  for (const claim of claims) {
    const n = stored.findIndex((s) => s.id === claim.message.id);
    assert.deepEqual(await readOctets(heldOctets(claim.octets!)), Buffer.concat(messages[n]!), `claim of message ${n}`);
  }
  index.close();
});

test('octets held in memory say so, joined or not; octets read from a file do not', () => {
  const a = Buffer.from('one');
  const b = Buffer.from('two');
  assert.deepEqual(bufferOctets(a).held, [a]);
  assert.deepEqual(joinOctets(bufferOctets(a), bufferOctets(b)).held, [a, b]);
  const dir = tempDir();
  writeFileSync(join(dir, 'f'), 'three');
  assert.equal(fileOctets(join(dir, 'f'), 0, 5).held, undefined);
  assert.equal(joinOctets(bufferOctets(a), fileOctets(join(dir, 'f'), 0, 5)).held, undefined);
});

test('a disk too full for the index commit is SpoolUnavailableError(full), and nothing is recorded', async (t) => {
  const disk = smallDisk(t, '1m');
  if (!disk) return;
  const spool = new Spool(disk);
  const index = openIndex(disk, Date.now, { groupCommit: { maxDelayMs: 1 } });
  const stored = await spool.write(Buffer.from('Subject: x\r\n\r\nhi\r\n'));
  // The file is synced; now the disk fills up before the rows are committed.
  const filler = openSync(join(disk, 'filler'), 'w');
  const block = Buffer.alloc(4096, 0x2e);
  try {
    for (let i = 0; i < 1024; i++) writeSync(filler, block);
    assert.fail('a 1 MB disk took 4 MB');
  } catch (err) {
    assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
  } finally {
    closeSync(filler);
  }
  const many = Array.from({ length: 400 }, (_, i) => `recipient-number-${i}-with-a-long-local-part@example.net`);
  const err = await index.enqueue(envelope(stored.id, stored.size, many)).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(err instanceof SpoolUnavailableError, `got ${String(err)}`);
  assert.equal(err.reason, 'full');
  assert.match(err.code, /^SQLITE_FULL/);
  assert.deepEqual(index.allMessages(), []);
  index.close();
});
