// Each message's log line says where the time from the end of DATA to the
// reply went (`delays`, milliseconds, as Postfix's delays=): normalizing,
// signing and the self-check, then the next hop's answer (sync mode) or the
// spool file and the index commit (queue mode).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { send, startSink, tempDir, type Sink } from '../helpers/relay-harness.ts';
import { until } from '../helpers/until.ts';
import { replyId, startLoggedRelay, type LoggedRelay } from '../pipeline/support.ts';

const RAW = Buffer.from('From: a@example.com\r\nTo: b@example.net\r\nSubject: delays\r\n\r\nHello.\r\n');
/** The slow next hop's wait before it answers the end of DATA. */
const UPSTREAM_MS = 300;

/** The line's delays, each a number of milliseconds at or above zero. */
function delaysOf(line: Record<string, unknown> | undefined, names: string[]): Record<string, number> {
  assert.ok(line, 'the message has a log line');
  const delays = line.delays as Record<string, unknown>;
  assert.deepEqual(Object.keys(delays), names);
  for (const name of names) assert.ok(typeof delays[name] === 'number' && delays[name] >= 0, `${name}: ${String(delays[name])}`);
  return delays as Record<string, number>;
}

describe('where a message waited, in its log line', () => {
  let slowSink: Sink;
  let sink: Sink;
  let syncRelay: LoggedRelay;
  let queueRelay: LoggedRelay;
  const queueDir = tempDir();

  before(async () => {
    slowSink = await startSink({ dataReplyDelayMs: UPSTREAM_MS });
    sink = await startSink();
    syncRelay = await startLoggedRelay({ delivery: { upstream: { type: 'smtp', host: '127.0.0.1', port: slowSink.port } } });
    queueRelay = await startLoggedRelay({
      delivery: { mode: 'queue', upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port } },
      queue: { dir: join(queueDir.path, 'spool') },
    });
  });
  after(async () => {
    await syncRelay.close();
    await queueRelay.close();
    await slowSink.close();
    await sink.close();
    queueDir.remove();
  });

  test('sync mode: signing, then the next hop; the slow hop is where the time went', async () => {
    const result = await send({ port: syncRelay.port, from: 'a@example.com', to: ['b@example.net'], raw: RAW });
    assert.equal(result.ok, true, JSON.stringify(result));
    const line = syncRelay.messageLog(replyId(result.ok ? result.response : ''));
    const delays = delaysOf(line, ['signing', 'upstream']);
    assert.ok(delays.upstream! >= UPSTREAM_MS - 1, `upstream ${delays.upstream} ms, the hop waited ${UPSTREAM_MS}`);
    assert.ok(delays.signing! < UPSTREAM_MS, `signing ${delays.signing} ms holds none of the hop's wait`);
    // The steps follow each other: together they are the line's whole time (ms is rounded to 1).
    assert.ok(delays.signing! + delays.upstream! <= (line!.ms as number) + 0.6, JSON.stringify(line));
  });

  test('queue mode: signing, the spool file, the index commit; the delivery line has its own', async () => {
    const result = await send({ port: queueRelay.port, from: 'a@example.com', to: ['b@example.net'], raw: RAW });
    assert.equal(result.ok, true, JSON.stringify(result));
    const id = /queued as (\S+)/.exec(result.ok ? result.response : '')?.[1];
    const queued = queueRelay.logs.find((l) => l.msg === 'message queued' && l.id === id);
    const delays = delaysOf(queued, ['signing', 'spool', 'commit']);
    assert.ok(delays.signing! + delays.spool! + delays.commit! <= (queued!.ms as number) + 0.6, JSON.stringify(queued));

    await until('the delivery line', () => queueRelay.logs.some((l) => l.msg === 'recipient delivered' && l.id === id));
    const delivered = queueRelay.logs.find((l) => l.msg === 'recipient delivered' && l.id === id);
    delaysOf(delivered, ['queue', 'attempt']);
  });
});
