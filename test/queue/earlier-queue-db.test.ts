// A relay started on the spool of an earlier release, whose queue.db was made
// without incremental auto-vacuum: it rewrites the file once before it
// listens, says so in one line, and delivers what was queued in it.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { QueueIndex } from '../../src/queue/queue-index.ts';
import { startSink, startTestRelay } from '../helpers/relay-harness.ts';
import { tempDir } from '../helpers/tmp.ts';
import { until } from '../helpers/until.ts';
import { envelope } from './support.ts';

test('a queue.db made without incremental auto-vacuum is rewritten at start-up, and its messages delivered', async () => {
  const spool = join(tempDir(), 'spool');
  mkdirSync(spool, { mode: 0o700 });
  const octets = Buffer.from('From: a@example.com\r\nTo: b@example.net\r\nSubject: queued before the upgrade\r\n\r\nHello.\r\n');
  const earlier = QueueIndex.open(join(spool, 'queue.db'));
  earlier.enqueueMany([envelope('20261207T000000000-0000-earlier00000', octets.length, ['b@example.net'], { octets })]);
  earlier.db.pragma('auto_vacuum = NONE'); // as every queue.db an earlier release made
  earlier.db.exec('VACUUM');
  earlier.close();

  const sink = await startSink();
  const relay = await startTestRelay({
    delivery: { mode: 'queue', upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port } },
    queue: { dir: spool },
  });
  try {
    const rewritten = relay.logs.filter((l) => l.msg === 'queue.db rewritten once (VACUUM) so that it can give the space of a delivered backlog back');
    assert.equal(rewritten.length, 1, JSON.stringify(relay.logs.map((l) => l.msg)));
    assert.equal(rewritten[0]!.file, join(spool, 'queue.db'));
    const listening = relay.logs.findIndex((l) => l.msg === 'relay listening');
    assert.ok(listening >= 0 && relay.logs.indexOf(rewritten[0]!) < listening, 'before the relay listens');
    await until('the queued message delivered', () => sink.received.length === 1);
    assert.match(sink.received[0]!.raw.toString(), /Subject: queued before the upgrade/);
  } finally {
    await relay.close();
    await sink.close();
  }
  const after = QueueIndex.open(join(spool, 'queue.db'));
  assert.equal(after.space().reclaimable, true);
  after.close();
});
