// The queue manager records what the upstream accepted before it sends
// anything else: a crash after a 250 then repeats only that one transaction.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Envelope, Upstream, UpstreamReply } from '../../src/delivery/upstream.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { retryPolicy } from '../../src/queue/backoff.ts';
import { QueueManager, type ManagerOptions } from '../../src/queue/manager.ts';
import { QueueIndex } from '../../src/queue/queue-index.ts';
import { Spool } from '../../src/queue/spool.ts';
import { tempDir } from '../helpers/tmp.ts';
import { envelope } from './support.ts';

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

test('a group the upstream accepted is recorded delivered before the next group of the message goes out', async () => {
  const dir = tempDir();
  const spool = new Spool(dir);
  const index = QueueIndex.open(join(dir, 'queue.db'));
  const stored = await spool.write(Buffer.from('From: a@example.com\r\nSubject: x\r\n\r\nhello\r\n'));
  // Different NOTIFY: two transactions (RFC 3461 §4.1).
  await index.enqueue(envelope(stored.id, stored.size, [], {
    recipients: [{ address: 'one@example.net', notify: ['FAILURE'] }, { address: 'two@example.net', notify: ['NEVER'] }],
  }));

  const seen: { to: string[]; states: string[] }[] = [];
  let finished!: () => void;
  const done = new Promise<void>((resolve) => (finished = resolve));
  const manager = startManager(spool, index, acceptingUpstream((env) => {
    seen.push({ to: env.to, states: index.show(stored.id)!.recipients.map((r) => r.state) });
    if (seen.length === 2) setImmediate(finished);
  }));
  await done;
  await manager.stop(5000);

  assert.deepEqual(seen, [
    { to: ['one@example.net'], states: ['delivering', 'delivering'] },
    { to: ['two@example.net'], states: ['delivered', 'delivering'] },
  ]);
  assert.equal(index.show(stored.id)?.recipients.every((r) => r.state === 'delivered') ?? true, true);
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
  const manager = startManager(spool, index, acceptingUpstream(() => setImmediate(delivered)));
  await done;
  for (let i = 0; i < 100 && (index.show(fresh.id) || (await spool.size(fresh.id)) !== undefined); i++) await new Promise((r) => setTimeout(r, 10));
  await manager.stop(5000);

  assert.equal(index.show(fresh.id), undefined, 'the delivered message\'s rows are gone');
  assert.equal(await spool.size(fresh.id), undefined, 'and its file');
  assert.equal(index.show(left.id), undefined, 'the one left behind was removed by the first look at the queue');
  assert.equal(await spool.size(left.id), undefined);
  index.close();
});
