// The smart host's connections are pooled and kept: a new connection costs a
// greeting the host may hold back on purpose (smtp-server holds it 100 ms,
// Postfix's postscreen longer), paid by whichever message meets it.
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import { pino } from 'pino';
import { configSchema } from '../../src/config/schema.ts';
import { SmtpUpstream } from '../../src/delivery/smtp-upstream.ts';
import { bufferOctets } from '../../src/message/octets.ts';
import { MESSAGE, startUpstream } from './upstreams.ts';

test("pooled connections carry far more than nodemailer's default 100 messages each", async () => {
  const up = await startUpstream();
  let connections = 0;
  up.server.server.on('connection', (_socket: Socket) => connections++);
  const config = configSchema.parse({ delivery: { upstream: { type: 'smtp', host: '127.0.0.1', port: up.port, maxConnections: 2, timeoutSeconds: 5 } } })
    .delivery.upstream;
  const upstream = new SmtpUpstream(config as Extract<typeof config, { type: 'smtp' }>, pino({ level: 'silent' }));
  try {
    await upstream.ready();
    const before = connections; // the extension probe's own connection
    const message = bufferOctets(Buffer.from(MESSAGE.replace('Grüße', 'Hello')));
    for (let round = 0; round < 15; round++) {
      const answers = await Promise.all(
        Array.from({ length: 20 }, () => upstream.deliver({ from: 'payroll@example.com', to: ['alice@example.net'] }, message)),
      );
      assert.deepEqual(new Set(answers.map((a) => a.code)), new Set([250]));
    }
    assert.equal(up.received.length, 300);
    assert.ok(connections - before <= 2, `300 messages over ${connections - before} connections; at most the pool's 2 expected`);
  } finally {
    await upstream.close();
    await up.close();
  }
});
