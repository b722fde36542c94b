// The queue manager records what the upstream accepted before it sends
// anything else: a crash after a 250 then repeats only that one transaction.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Envelope, Upstream, UpstreamReply } from '../../src/delivery/upstream.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { readOctets } from '../../src/message/octets.ts';
import { retryPolicy } from '../../src/queue/backoff.ts';
import { QueueManager, type ManagerOptions } from '../../src/queue/manager.ts';
import { QueueIndex, type Claim, type QueuedRecipient } from '../../src/queue/queue-index.ts';
import { Spool } from '../../src/queue/spool.ts';
import { tempDir } from '../helpers/tmp.ts';
import { until } from '../helpers/until.ts';
import { envelope, walCommits } from './support.ts';

const OK = { code: 250, enhanced: '2.0.0', text: 'Ok' };

/** An upstream that accepts every recipient, after telling `onDeliver` of each transaction. */
function acceptingUpstream(onDeliver: (env: Envelope) => void): Upstream {
  return {
    name: 'accepting upstream',
    traits: { dualSign: false, eightBitMime: true, smtpUtf8: true, provisional: false },
    ready: async () => {},
    close: async () => {},
    async deliver(env: Envelope): Promise<UpstreamReply> {
      onDeliver(env);
      return { ...OK, recipients: env.to.map((address) => ({ address, reply: OK })) };
    },
  };
}

function startManager(spool: Spool, index: QueueIndex, upstream: Upstream): QueueManager {
  const manager = new QueueManager({
    spool,
    index,
    upstream,
    logger: silentLogger(),
    policy: retryPolicy({ retryAfter: '1m', maxRetryInterval: '1h', maxAge: '5d' }),
    notices: {} as ManagerOptions['notices'],
    workers: 1,
  });
  manager.start();
  return manager;
}

test('recipients whose NOTIFY and ORCPT differ share one transaction, each with its own parameters', async () => {
  const dir = tempDir();
  const spool = new Spool(dir);
  const index = QueueIndex.open(join(dir, 'queue.db'));
  const stored = await spool.write(Buffer.from('From: a@example.com\r\nSubject: x\r\n\r\nhello\r\n'));
  await index.enqueue(
    envelope(stored.id, stored.size, [], {
      ret: 'HDRS',
      recipients: [
        { address: 'one@example.net', notify: ['FAILURE'], orcpt: 'rfc822;first@example.org' },
        { address: 'two@example.net', notify: ['NEVER'] },
        { address: 'three@example.net' },
      ],
    }),
  );

  const seen: Envelope[] = [];
  let delivered!: () => void;
  const done = new Promise<void>((resolve) => (delivered = resolve));
  const manager = startManager(
    spool,
    index,
    acceptingUpstream((env) => {
      seen.push(env);
      setImmediate(delivered);
    }),
  );
  await done;
  for (let i = 0; i < 100 && index.show(stored.id); i++) await new Promise((r) => setTimeout(r, 10));
  await manager.stop(5000);

  assert.equal(seen.length, 1, 'one transaction');
  assert.deepEqual(seen[0]!.to, ['one@example.net', 'two@example.net', 'three@example.net']);
  assert.equal(seen[0]!.dsn?.ret, 'HDRS');
  assert.deepEqual(
    [...seen[0]!.dsn!.recipients!],
    [
      ['one@example.net', { notify: ['FAILURE'], orcpt: 'rfc822;first@example.org' }],
      ['two@example.net', { notify: ['NEVER'], orcpt: undefined }],
    ],
  );
  assert.equal(index.show(stored.id), undefined, 'all three delivered, the message removed');
  index.close();
});

test('an attempt that finishes its message removes it at once; one a stopped process finished goes at the first look', async () => {
  const dir = tempDir();
  const spool = new Spool(dir);
  const index = QueueIndex.open(join(dir, 'queue.db'));
  const raw = Buffer.from('From: a@example.com\r\nSubject: x\r\n\r\nhello\r\n');
  // Finished by a process that stopped before removing it: its result is recorded, its rows and file remain.
  const left = await spool.write(raw);
  index.enqueueMany([envelope(left.id, left.size)]);
  const [claim] = index.claimDue({ limit: 1, leaseMs: 60_000 });
  index.record(claim!, [{ seq: 0, result: 'delivered', reply: OK }]);
  const fresh = await spool.write(raw);
  await index.enqueue(envelope(fresh.id, fresh.size));

  let delivered!: () => void;
  const done = new Promise<void>((resolve) => (delivered = resolve));
  const manager = startManager(
    spool,
    index,
    acceptingUpstream(() => setImmediate(delivered)),
  );
  await done;
  for (let i = 0; i < 100 && (index.show(fresh.id) || (await spool.size(fresh.id)) !== undefined); i++) await new Promise((r) => setTimeout(r, 10));
  await manager.stop(5000);

  assert.equal(index.show(fresh.id), undefined, "the delivered message's rows are gone");
  assert.equal(await spool.size(fresh.id), undefined, 'and its file');
  assert.equal(index.show(left.id), undefined, 'the one left behind was removed by the first look at the queue');
  assert.equal(await spool.size(left.id), undefined);
  index.close();
});

test('an attempt whose result cannot be recorded (a full disk) hands its recipients back by the first retry interval, not the lease', async () => {
  const dir = tempDir();
  const spool = new Spool(dir);
  const index = QueueIndex.open(join(dir, 'queue.db'));
  const stored = await spool.write(Buffer.from('From: a@example.com\r\nSubject: x\r\n\r\nhello\r\n'));
  await index.enqueue(envelope(stored.id, stored.size));
  const [record, recordFinalSoon] = [index.record, index.recordFinalSoon];
  let failed = false;
  // Both ways a result is committed fail, as they would on a full disk.
  const full = () => {
    failed = true;
    return Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
  };
  index.record = () => {
    throw full();
  };
  index.recordFinalSoon = () => Promise.reject(full());
  const manager = startManager(
    spool,
    index,
    acceptingUpstream(() => {}),
  );
  await until('the attempt to try recording its result', () => failed);
  const start = Date.now();
  let recipient = index.show(stored.id)!.recipients[0]!;
  for (let i = 0; i < 200 && recipient.state === 'delivering'; i++) {
    await new Promise((r) => setTimeout(r, 10));
    recipient = index.show(stored.id)!.recipients[0]!;
  }
  await manager.stop(5000);
  [index.record, index.recordFinalSoon] = [record, recordFinalSoon];
  assert.equal(recipient.state, 'queued', 'given back, not left claimed');
  // retryAfter is 1m (with jitter below it); the claim's lease would have been a quarter of an hour.
  assert.ok(recipient.nextAttemptAt - start <= 60_000 && recipient.nextAttemptAt - start > 30_000, `next attempt in ${recipient.nextAttemptAt - start} ms`);
  index.close();
});

test('a fresh message delivered at once costs two commits: its intake group, then its result and removal together', async () => {
  const dir = tempDir();
  const spool = new Spool(dir);
  // As the daemon does: a commit wakes the manager.
  let manager: QueueManager | undefined;
  const index = QueueIndex.open(join(dir, 'queue.db'), { onCommit: () => manager?.wake() });
  index.db.pragma('wal_autocheckpoint = 0'); // the WAL keeps every commit of the test
  let delivered = 0;
  manager = startManager(
    spool,
    index,
    acceptingUpstream(() => delivered++),
  );
  const before = walCommits(join(dir, 'queue.db-wal'));
  const stored = await spool.write(Buffer.from('From: a@example.com\r\nSubject: x\r\n\r\nhello\r\n'));
  await index.enqueue(envelope(stored.id, stored.size));
  for (let i = 0; i < 200 && (await spool.size(stored.id)) !== undefined; i++) await new Promise((r) => setTimeout(r, 10));
  const commits = walCommits(join(dir, 'queue.db-wal')) - before;
  await manager.stop(5000);

  assert.equal(delivered, 1);
  assert.equal(index.show(stored.id), undefined, 'delivered and removed');
  assert.equal(await spool.size(stored.id), undefined);
  // Claimed in its intake transaction (no claim read back), its result and its removal in one transaction.
  assert.equal(commits, 2, `${commits} commits for one message`);
  index.close();
});

test('a small message claimed at intake is delivered from the octets it was committed with, not read back from queue.db; one claimed later is read', async () => {
  const dir = tempDir();
  const spool = new Spool(dir);
  let manager: QueueManager | undefined;
  const index = QueueIndex.open(join(dir, 'queue.db'), { onCommit: () => manager?.wake() });
  const reads: string[] = [];
  const octetsOf = index.octets.bind(index);
  index.octets = (id: string) => (reads.push(id), octetsOf(id));
  const raw = (subject: string) => Buffer.from(`From: a@example.com\r\nSubject: ${subject}\r\n\r\nhello\r\n`);
  // Queued while no manager runs: claimed later by claimDue, from the index.
  await index.enqueue(envelope('20261207T000000000-0000-earlier00000', raw('earlier').length, ['b@example.net'], { octets: raw('earlier') }));
  const sent: string[] = [];
  const upstream = acceptingUpstream(() => {});
  const deliver = upstream.deliver.bind(upstream);
  upstream.deliver = async (env, octets, signedBy) => {
    sent.push((await readOctets(octets)).toString());
    return deliver(env, octets, signedBy);
  };
  manager = startManager(spool, index, upstream);
  await until('the earlier message delivered', () => sent.length === 1);
  assert.deepEqual(reads, ['20261207T000000000-0000-earlier00000']);
  await index.enqueue(envelope('20261207T000000000-0000-fresh000000', raw('fresh').length, ['b@example.net'], { octets: raw('fresh') }));
  await until('the fresh message delivered', () => sent.length === 2);
  await manager.stop(5000);
  assert.deepEqual(sent, [raw('earlier').toString(), raw('fresh').toString()]);
  assert.deepEqual(reads, ['20261207T000000000-0000-earlier00000'], 'the fresh one was not read back');
  index.close();
});

test('a message claimed at intake and never attempted (a crash) is due again after start-up, with the same content as a claim read back', async () => {
  const dir = tempDir();
  const spool = new Spool(dir);
  const index = QueueIndex.open(join(dir, 'queue.db'));
  const taken: Claim[] = [];
  index.claimOnIntake({ leaseMs: 60_000, room: () => 1, take: (claims) => taken.push(...claims) });
  const stored = await spool.write(Buffer.from('From: a@example.com\r\nSubject: x\r\n\r\nhello\r\n'));
  await index.enqueue(
    envelope(stored.id, stored.size, [], {
      ret: 'HDRS',
      envid: 'E1',
      senderDomains: ['example.com'],
      signatures: [
        { domain: 'Example.COM', selector: 's2' },
        { domain: 'example.com', selector: 's1' },
        { domain: 'a.example', selector: 'k' },
      ],
      recipients: [{ address: 'one@example.net', notify: ['FAILURE', 'DELAY'], orcpt: 'rfc822;one@example.org' }, { address: 'two@example.net' }],
    }),
  );
  assert.equal(taken.length, 1, 'claimed as it was recorded');
  assert.deepEqual(index.claimDue({ limit: 10, leaseMs: 60_000 }), [], 'and held by that claim in the index');
  index.close();

  const after = QueueIndex.open(join(dir, 'queue.db'));
  assert.equal(after.resetDelivering(), 2, 'start-up hands its recipients back');
  const [again] = after.claimDue({ limit: 10, leaseMs: 60_000 });
  const fresh = taken[0]!;
  assert.deepEqual({ ...fresh.message }, { ...again!.message });
  assert.deepEqual(fresh.signatures, again!.signatures);
  assert.equal(fresh.signingDomain, again!.signingDomain);
  const comparable = (r: QueuedRecipient) => ({ ...r, nextAttemptAt: 0, updatedAt: 0, state: r.state });
  assert.deepEqual(fresh.recipients.map(comparable), again!.recipients.map(comparable));
  after.close();
});

test("a recipient's log line says how long it waited in the queue and how long its attempt took", async () => {
  const dir = tempDir();
  const spool = new Spool(dir);
  const index = QueueIndex.open(join(dir, 'queue.db'));
  const stored = await spool.write(Buffer.from('From: a@example.com\r\nSubject: x\r\n\r\nhello\r\n'));
  const receivedAt = 1_800_000_000_000;
  let clock = receivedAt + 5_000; // the first attempt starts five seconds after the 250
  index.enqueueMany([envelope(stored.id, stored.size, ['b@example.net'], { receivedAt })]);

  const lines: Record<string, unknown>[] = [];
  const logged = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line.startsWith('{')) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const upstream = acceptingUpstream(() => (clock += 1_234)); // the next hop takes 1.234 s to answer
  const manager = new QueueManager({
    spool,
    index,
    upstream,
    logger: pino({ level: 'info' }, logged),
    policy: retryPolicy({ retryAfter: '1m', maxRetryInterval: '1h', maxAge: '5d' }),
    notices: {} as ManagerOptions['notices'],
    workers: 1,
    now: () => clock,
  });
  manager.start();
  await until('the delivery line', () => lines.some((l) => l.msg === 'recipient delivered'));
  await manager.stop(5000);
  index.close();

  const line = lines.find((l) => l.msg === 'recipient delivered')!;
  assert.equal(line.id, stored.id);
  assert.deepEqual(line.delays, { queue: 5_000, attempt: 1_234 });
});

test('once it has delivered a backlog, the manager gives its space in queue.db back to the file system', async () => {
  const dir = tempDir();
  const spool = new Spool(dir);
  const index = QueueIndex.open(join(dir, 'queue.db'));
  const size = 100 * 1024;
  const ids = Array.from({ length: 60 }, (_, i) => `20261207T000000000-0000-backlog${String(i).padStart(4, '0')}`);
  index.enqueueMany(ids.map((id) => envelope(id, size, ['b@example.net'], { octets: Buffer.alloc(size, id) })));
  index.checkpoint();
  const before = statSync(index.file).size;

  const lines: Record<string, unknown>[] = [];
  const logged = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line.startsWith('{')) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  let delivered = 0;
  const manager = new QueueManager({
    spool,
    index,
    upstream: acceptingUpstream(() => delivered++),
    logger: pino({ level: 'info' }, logged),
    policy: retryPolicy({ retryAfter: '1m', maxRetryInterval: '1h', maxAge: '5d' }),
    notices: {} as ManagerOptions['notices'],
    workers: 4,
  });
  manager.start();
  try {
    await until('the space given back', () => lines.some((l) => l.msg === 'queue.db gave the space of a delivered backlog back to the file system'));
  } finally {
    await manager.stop(5000);
  }
  assert.equal(delivered, ids.length);
  assert.equal(index.depth().messages, 0);
  const after = statSync(index.file).size;
  assert.ok(after < before / 2, `queue.db: ${before} octets with the backlog, ${after} after`);
  index.close();
});
