// corrupt/ does not grow for ever: what start-up recovery set aside there is
// removed queue.corruptRetention after it was moved, by the queue manager's
// maintenance, with one log line. Times come from an injected clock.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { pino } from 'pino';
import { retryPolicy } from '../../src/queue/backoff.ts';
import { QueueManager, type ManagerOptions } from '../../src/queue/manager.ts';
import { QueueIndex } from '../../src/queue/queue-index.ts';
import { corruptExpired, Spool } from '../../src/queue/spool.ts';
import { tempDir } from '../helpers/tmp.ts';

const DAY = 86_400_000;

test('corruptExpired: at the retention and after, not before', () => {
  assert.equal(corruptExpired(0, 30 * DAY - 1, 30 * DAY), false);
  assert.equal(corruptExpired(0, 30 * DAY, 30 * DAY), true);
});

/** A spool that tells when the manager has looked at corrupt/. */
class WatchedSpool extends Spool {
  looked: Promise<string[]> = new Promise(() => {});
  #told: (names: string[]) => void = () => {};
  expectLook(): void {
    this.looked = new Promise((resolve) => (this.#told = resolve));
  }
  override async removeOldCorrupt(now: number, retentionMs: number): Promise<string[]> {
    const removed = await super.removeOldCorrupt(now, retentionMs);
    this.#told(removed);
    return removed;
  }
}

test('the queue manager removes files past queue.corruptRetention from corrupt/, keeps younger ones, and says so once', async () => {
  const dir = tempDir();
  const spool = new WatchedSpool(dir);
  const index = QueueIndex.open(join(dir, 'queue.db'));
  // Set aside by recovery: a file written, then renamed into corrupt/.
  const stored = await spool.write(Buffer.from('Subject: lost\r\n\r\nx\r\n'));
  await spool.moveToCorrupt(`${stored.id}.eml`);
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk, _e, cb) {
        lines.push(JSON.parse(String(chunk)));
        cb();
      },
    }),
  );

  async function runAt(offsetMs: number): Promise<void> {
    const manager = new QueueManager({
      spool,
      index,
      upstream: {
        name: 'none',
        traits: { dualSign: false, eightBitMime: true, smtpUtf8: true, provisional: false },
        ready: async () => {},
        close: async () => {},
        deliver: async () => assert.fail('nothing is due'),
      },
      logger,
      policy: retryPolicy({ retryAfter: '1m', maxRetryInterval: '1h', maxAge: '5d' }),
      notices: {} as ManagerOptions['notices'],
      workers: 1,
      corruptRetentionMs: 30 * DAY,
      now: () => Date.now() + offsetMs,
    });
    spool.expectLook();
    manager.start();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      spool.looked,
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('the manager never looked at corrupt/')), 10_000))),
    ]);
    clearTimeout(timer);
    await manager.stop(1000);
  }

  await runAt(29 * DAY);
  assert.deepEqual(readdirSync(join(dir, 'corrupt')), [`${stored.id}.eml`], 'kept within the retention');
  assert.equal(lines.length, 0);

  await runAt(30 * DAY + 60_000);
  assert.deepEqual(readdirSync(join(dir, 'corrupt')), [], 'removed after it');
  const said = lines.filter((l) => String(l.msg).includes('queue.corruptRetention'));
  assert.equal(said.length, 1);
  assert.equal(said[0]!.removed, 1);
  assert.deepEqual(said[0]!.files, [`${stored.id}.eml`]);
  index.close();
});

test('a young file stays; an old one goes, and so does a folder someone left there', async () => {
  const dir = tempDir();
  const spool = new Spool(dir);
  writeFileSync(join(dir, 'corrupt', 'young.eml'), 'x');
  mkdirSync(join(dir, 'corrupt', 'folder'));
  writeFileSync(join(dir, 'corrupt', 'folder', 'inside'), 'x');
  const now = Date.now();
  assert.deepEqual(await spool.removeOldCorrupt(now, DAY), []);
  assert.deepEqual(await spool.removeOldCorrupt(now + DAY + 1000, DAY), ['folder', 'young.eml']);
  assert.deepEqual(readdirSync(join(dir, 'corrupt')), []);
});
