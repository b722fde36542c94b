// The bundled load generator and the counting sink over loopback: every
// message counted once, the sample kept whole, probes told apart and timed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runLoad } from '../../bench/load.ts';
import { benchMessage } from '../../bench/message.ts';
import { familyPss, family } from '../../bench/memory.ts';
import { latencies, probe } from '../../bench/probe.ts';
import { CountingSink } from '../../bench/sink.ts';
import { tempDir } from '../helpers/tmp.ts';

test('bench/load-node.ts delivers every message to the sink, which keeps the asked sample', async () => {
  const sink = await CountingSink.start();
  try {
    sink.reset(5, 2);
    const message = benchMessage(4096);
    const result = await runLoad({ port: sink.port, sessions: 3, count: 30, message, dir: tempDir(), seconds: 20, tool: 'node' });
    assert.equal(result.stopped, false);
    assert.deepEqual(JSON.parse(result.output), { accepted: 30, refused: 0, errors: [], seconds: JSON.parse(result.output).seconds });
    assert.equal(sink.count, 30);
    assert.ok(sink.lastAt >= result.startedAt && sink.lastAt <= result.endedAt);
    assert.equal(sink.samples.length, 2);
    // The sink sees the content without the final "." line.
    for (const sample of sink.samples) assert.deepEqual(sample, message);
  } finally {
    await sink.close();
  }
});

test('probes are not counted as load, and each one is timed from its last octet to its arrival', async () => {
  const sink = await CountingSink.start();
  try {
    sink.reset();
    const run = await probe(sink.port, 4096, 50, 0.5);
    const added = await latencies(run, sink.probes, 5000);
    assert.ok(run.sentAt.size >= 5, `${run.sentAt.size} probes sent`);
    assert.equal(added.length, run.sentAt.size);
    assert.equal(sink.count, 0);
    for (const ms of added) assert.ok(ms >= 0 && ms < 5000, `latency ${ms} ms`);
  } finally {
    await sink.close();
  }
});

test('the PSS of a process family includes this process', () => {
  assert.ok(family([process.pid]).includes(process.pid));
  assert.ok(familyPss([process.pid]) > 1024 * 1024);
  assert.equal(familyPss([2 ** 22 + 12345]), 0);
});
