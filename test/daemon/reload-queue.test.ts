// A reload in queue mode: the new relay's queue manager delivers what the
// sessions the old relay let finish take in, as soon as they take it in. The
// old relay's index records those messages; its manager has stopped.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { configSchema } from '../../src/config/schema.ts';
import { startRelay } from '../../src/daemon/daemon.ts';
import { SqliteKeyStore } from '../../src/keys/store.ts';
import { rawSession } from '../helpers/raw-smtp.ts';
import { startSink, tempDir } from '../helpers/relay-harness.ts';
import { until } from '../helpers/until.ts';

const MESSAGE = 'From: a@example.com\r\nTo: b@example.net\r\nSubject: taken in by the old relay\r\n\r\nHello.\r\n.\r\n';

test('after a reload, a message a session of the old relay takes in is delivered by the new relay at once', async () => {
  const dir = tempDir();
  const sink = await startSink();
  const config = configSchema.parse({
    listen: { port: 0, hostname: 'relay.test' },
    metrics: { listen: '127.0.0.1:0' },
    rotation: { check: 'off' },
    keys: { dir: join(dir.path, 'keys') },
    queue: { dir: join(dir.path, 'spool') },
    delivery: { mode: 'queue', upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port } },
  });
  const setup = SqliteKeyStore.open(config.keys.dir);
  setup.generate({ domain: 'example.com', algorithm: 'ed25519', activate: true });
  setup.close();
  const logger = pino({ level: 'silent' });
  // Neither manager looks at queue.db for other writers within the test's bound: only a wake can deliver in time.
  const options = { recover: false, queueWatchMs: 600_000 };
  const old = await startRelay({ config, path: 'test' }, logger, options);
  const port = old.ports.plain;
  const session = await rawSession(port);
  let retired: Promise<void> | undefined;
  try {
    assert.match((await session.reply(1)) ?? '', /^220 /);
    session.write('EHLO client.test\r\n');
    assert.match((await session.reply(2)) ?? '', /^250[ -]/);

    // What `serve` does at SIGHUP: the old relay retires once the new one holds the listening socket.
    let handOver!: () => void;
    retired = old.stop(new Promise<void>((resolve) => (handOver = resolve)));
    const next = await startRelay({ config: { ...config, listen: { ...config.listen, port } }, path: 'test' }, logger, options);
    handOver();
    try {
      session.write('MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n');
      assert.match((await session.reply(5)) ?? '', /^354 /, session.replies.join('\n'));
      session.write(MESSAGE);
      assert.match((await session.reply(6)) ?? '', /^250 /, session.replies.join('\n'));
      await until('the sink has the message', () => sink.received.length === 1, { timeoutMs: 20_000 });
      assert.match(sink.received[0]!.raw.toString(), /^DKIM-Signature: .* d=example\.com;/m);
      session.write('QUIT\r\n');
      await session.closed;
    } finally {
      await next.stop();
    }
  } finally {
    session.socket.destroy();
    await (retired ?? old.stop());
    await sink.close();
    dir.remove();
  }
});
