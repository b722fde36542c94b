// What a relay's fleet heartbeat reads from its queue index: for every key
// that signed a queued message, when the oldest such message came in. One
// query at every heartbeat (5 s), so it is measured on a spool of 10,000.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { QueueIndex } from '../../src/queue/queue-index.ts';
import { newSpoolId } from '../../src/queue/spool.ts';
import { tempDir } from '../helpers/tmp.ts';
import { envelope } from './support.ts';

const T0 = Date.UTC(2026, 11, 6, 8, 0, 0);
const KEYS = [
  { domain: 'example.com', selector: 's1' },
  { domain: 'example.com', selector: 's2' },
  { domain: 'example.org', selector: 'a' },
];

test('oldestBySigner: the oldest queued message of each signing key, the same as asking key by key; measured on 10,000 messages', (t) => {
  const index = QueueIndex.open(join(tempDir(), 'queue.db'), { now: () => T0 });
  try {
    assert.deepEqual(index.oldestBySigner(), [], 'an empty queue names no key');
    // Every message signed by one or two keys, received one second apart, newest first so the oldest is inserted last.
    const messages = Array.from({ length: 10_000 }, (_, i) =>
      envelope(newSpoolId(), 1000, ['b@example.net', 'c@example.net'], {
        receivedAt: T0 - i * 1000,
        signatures: i % 3 === 2 ? [KEYS[2]!] : i % 2 === 0 ? [KEYS[0]!] : [KEYS[0]!, KEYS[1]!],
      }),
    );
    for (let i = 0; i < messages.length; i += 500) index.enqueueMany(messages.slice(i, i + 500));

    const rows = index.oldestBySigner();
    const expected = KEYS.map((k) => ({ ...k, oldest: index.oldestSignedWith(k.domain, k.selector)! }));
    assert.deepEqual(
      [...rows].sort((a, b) => `${a.domain} ${a.selector}`.localeCompare(`${b.domain} ${b.selector}`)),
      expected,
    );
    assert.ok(
      rows.every((r) => r.oldest <= T0 - 9990 * 1000),
      'each key signed one of the oldest messages',
    );

    // Delivered and removed, a message no longer counts: the oldest of a key moves on, a key with none left is gone.
    const onlyA = messages.filter((m) => m.signatures[0]!.domain === 'example.org');
    for (const m of onlyA) index.remove(m.id);
    assert.deepEqual(
      index.oldestBySigner().map((r) => r.domain),
      ['example.com', 'example.com'],
    );
    for (const m of onlyA) index.enqueueMany([m]);

    const runs = Array.from({ length: 25 }, () => {
      const start = performance.now();
      index.oldestBySigner();
      return performance.now() - start;
    }).sort((a, b) => a - b);
    const median = runs[Math.floor(runs.length / 2)]!;
    t.diagnostic(
      `oldestBySigner over 10,000 queued messages (16,667 signatures): median ${median.toFixed(2)} ms, max ${runs.at(-1)!.toFixed(2)} ms of 25 runs`,
    );
    // Once per heartbeat on the event loop: well under the time a heartbeat's database round trip takes.
    assert.ok(median < 100, `median ${median} ms`);
  } finally {
    index.close();
  }
});
