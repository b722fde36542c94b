// `queue release` and `queue flush` take effect in the running relay at once
// (as postqueue -f), not at its next 60 s look at the queue: the real `serve`
// and the real `queue` commands on one spool, and a smart host that reports
// each message as it arrives.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { bufferOctets } from '../../src/message/octets.ts';
import { acceptMessage } from '../../src/queue/accept.ts';
import { QueueIndex } from '../../src/queue/queue-index.ts';
import { Spool } from '../../src/queue/spool.ts';
import { startUpstream } from '../delivery/upstreams.ts';
import { tempDir } from '../helpers/tmp.ts';
import { dkimRelay, serve } from './support.ts';

/** Well under the relay's 60 s timer, with room for a busy machine. */
const BOUND_MS = 20_000;

function message(subject: string): Buffer {
  return Buffer.from(`From: a@example.com\r\nTo: b@example.net\r\nSubject: ${subject}\r\n\r\nHello.\r\n`);
}

test('a held message released, and a deferred one flushed, are delivered by the running relay without waiting for its timer', async () => {
  const dir = tempDir('dkim-relay-queue-wake-');
  const spoolDir = join(dir, 'spool');
  const arrivals: string[] = [];
  const waiters = new Set<() => void>();
  const host = await startUpstream({
    onData(stream, _session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        arrivals.push(/^Subject: (.*)$/m.exec(Buffer.concat(chunks).toString())?.[1]?.trim() ?? '?');
        for (const w of waiters) w();
        callback(null, 'Ok: queued');
      });
    },
  });
  const arrived = (subject: string, since: number) =>
    new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`"${subject}" not delivered within ${BOUND_MS} ms; arrived: ${arrivals.join(', ')}`)), BOUND_MS);
      const check = () => arrivals.includes(subject) && done();
      const done = (err?: Error) => {
        clearTimeout(timer);
        waiters.delete(check);
        if (err) reject(err);
        else resolve(Date.now() - since);
      };
      waiters.add(check);
      check();
    });

  // Before the relay starts: one message held, one deferred for half an hour.
  const spool = new Spool(spoolDir);
  const index = QueueIndex.open(join(spoolDir, 'queue.db'));
  const base = { client: '192.0.2.10', sender: 'a@example.com', signatures: [], receivedAt: Date.now() };
  const held = await acceptMessage({ spool, index }, bufferOctets(message('held')), { ...base, recipients: [{ address: 'b@example.net' }] });
  index.hold(held.id);
  const deferred = await acceptMessage({ spool, index }, bufferOctets(message('deferred')), { ...base, recipients: [{ address: 'c@example.net' }] });
  const [claim] = index.claimDue({ limit: 10, leaseMs: 60_000 });
  assert.equal(claim!.message.id, deferred.id);
  index.record(claim!, [{ seq: 0, result: 'deferred', reply: { code: 451, enhanced: '4.4.1', text: 'try later' }, nextAttemptAt: Date.now() + 30 * 60_000 }]);
  index.close();

  const config = join(dir, 'relay.yaml');
  writeFileSync(
    config,
    `keys: {dir: ${join(dir, 'keys')}}\nmetrics: {listen: "127.0.0.1:0"}\nrotation: {check: "off"}\nlisten: {port: 0, hostname: relay.example.test}\n` +
      `delivery: {mode: queue, upstream: {type: smtp, host: 127.0.0.1, port: ${host.port}}}\nqueue: {dir: ${spoolDir}}\n`,
  );
  const relay = await serve(['--config', config], dir);
  try {
    const releasedAt = Date.now();
    const release = await dkimRelay(['queue', 'release', held.id, '--config', config], dir);
    assert.equal(release.code, 0, release.stderr);
    assert.equal(release.stdout, `${held.id}: released; will be tried now\n`);
    const releaseMs = await arrived('held', releasedAt);

    const flushedAt = Date.now();
    const flush = await dkimRelay(['queue', 'flush', '--config', config], dir);
    assert.equal(flush.code, 0, flush.stderr);
    assert.equal(flush.stdout, '1 message(s) will be tried now (1 recipient(s))\n');
    const flushMs = await arrived('deferred', flushedAt);
    console.log(`delivered ${releaseMs} ms after release was started, ${flushMs} ms after flush was started`);
    assert.deepEqual(arrivals, ['held', 'deferred']);
  } finally {
    relay.kill();
    await relay.exited;
    await host.close();
  }
});
