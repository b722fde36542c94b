// A smart host that cannot be reached for longer than queue.retryAfter: the
// real `serve` keeps /readyz at 200 but names the problem there and on the
// status page, and dkim_relay_upstream_failing_seconds counts it.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { bufferOctets } from '../../src/message/octets.ts';
import { acceptMessage } from '../../src/queue/accept.ts';
import { QueueIndex } from '../../src/queue/queue-index.ts';
import { Spool } from '../../src/queue/spool.ts';
import { serve } from '../cli/support.ts';
import { tempDir } from '../helpers/tmp.ts';

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
}

test('an unreachable smart host is named by /readyz (still 200) and the status page after queue.retryAfter, and counted by the metric', async () => {
  const dir = tempDir('dkim-relay-upstream-failing-');
  const spoolDir = join(dir, 'spool');
  const spool = new Spool(spoolDir);
  const index = QueueIndex.open(join(spoolDir, 'queue.db'));
  await acceptMessage({ spool, index }, bufferOctets(Buffer.from('From: a@example.com\r\nTo: b@example.net\r\nSubject: waits\r\n\r\nHello.\r\n')), {
    client: '192.0.2.10',
    sender: 'a@example.com',
    signatures: [],
    receivedAt: Date.now(),
    recipients: [{ address: 'b@example.net' }],
  });
  index.close();
  const port = await closedPort();
  const config = join(dir, 'relay.yaml');
  writeFileSync(
    config,
    `keys: {dir: ${join(dir, 'keys')}}\nmetrics: {listen: "127.0.0.1:0"}\nrotation: {check: "off"}\nlisten: {port: 0, hostname: relay.example.test}\n` +
      `delivery: {mode: queue, upstream: {type: smtp, host: 127.0.0.1, port: ${port}}}\nqueue: {dir: ${spoolDir}, retryAfter: 1s, maxRetryInterval: 1s}\n`,
  );
  const relay = await serve(['--config', config], dir);
  try {
    const metricsPort = (
      JSON.parse(
        relay
          .output()
          .split('\n')
          .find((l) => l.includes('"relay listening"'))!,
      ) as { metrics: number }
    ).metrics;
    // Bounded: the first attempt fails at once, and 1 s later it is past queue.retryAfter.
    let ready = await get(metricsPort, '/readyz');
    for (let i = 0; i < 60 && !ready.body.includes('failing'); i++) {
      await new Promise((r) => setTimeout(r, 250));
      ready = await get(metricsPort, '/readyz');
    }
    assert.equal(ready.status, 200, 'the relay still accepts mail');
    assert.match(
      ready.body,
      new RegExp(
        `^ready\\nupstream smtp 127\\.0\\.0\\.1:${port} failing for \\d+s \\(longer than queue\\.retryAfter; mail is queued meanwhile\\): 451 4\\.4\\.1 Upstream unavailable: .*\\n$`,
      ),
    );

    const page = await get(metricsPort, '/');
    assert.match(page.body, /<p id="upstream">Upstream: <span class="badge bad">failing<\/span> upstream smtp 127\.0\.0\.1:\d+ failing for \d+s/);
    const metric = /^dkim_relay_upstream_failing_seconds (\S+)$/m.exec((await get(metricsPort, '/metrics')).body);
    assert.ok(metric && Number(metric[1]) >= 1, `metric: ${metric?.[0]}`);
  } finally {
    relay.kill();
    await relay.exited;
  }
});
