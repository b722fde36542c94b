// The normalization thread is started by the first large message that needs
// rewriting and stopped once idle, so its memory is not held for ever; the
// next such message starts a new one.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { test } from 'node:test';
import { normalizeFileInThread, normalizeThreadSettings, normalizeWorker } from '../../src/pipeline/normalize-thread.ts';
import { tempDir } from '../helpers/tmp.ts';
import { options } from './support.ts';

/** Whether `worker` exits within `ms`. */
async function exits(worker: Worker, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(resolve, ms, false)));
  try {
    return await Promise.race([once(worker, 'exit').then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

test('an idle normalization thread is stopped, and the next job starts a new one', async () => {
  const dir = tempDir();
  const input = join(dir, 'in.eml');
  // A line of 1500 octets: the body must be re-encoded (RFC 5322 §2.1.1).
  writeFileSync(input, `From: a@example.com\r\nTo: b@example.net\r\nSubject: long\r\n\r\n${'x'.repeat(1500)}\r\n`);
  normalizeThreadSettings.idleStopMs = 50;

  const first = await normalizeFileInThread(input, join(dir, 'out1.eml'), options({}));
  assert.ok(first.ok && first.changed, 'rewritten in the thread');
  const worker = normalizeWorker();
  assert.ok(worker, 'the thread runs after its job');
  assert.equal(await exits(worker, 10_000), true, 'the idle thread exited');
  assert.equal(normalizeWorker(), null);

  const second = await normalizeFileInThread(input, join(dir, 'out2.eml'), options({}));
  assert.ok(second.ok && second.changed, 'a new thread did the next job');
  const again = normalizeWorker();
  assert.ok(again);
  assert.equal(await exits(again, 10_000), true, 'and stopped in turn');
});
