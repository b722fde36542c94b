// A permanent refusal while the spool is full: the bounce cannot be queued.
// The message must then wait by the back-off like any temporary failure, not
// be made due again at once (which sent one upstream session after another,
// thousands a minute, for as long as the disk stayed full).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import nodemailer from 'nodemailer';
import { SMTPServer, type SMTPServerAddress } from 'smtp-server';
import { DEFAULT_RETRY_POLICY } from '../../src/queue/backoff.ts';
import { SpoolUnavailableError } from '../../src/common/spool-error.ts';
import { startTestRelay } from '../helpers/relay-harness.ts';
import { until } from '../helpers/until.ts';

const RAW = [
  'From: Payroll <payroll@example.com>',
  'To: <gone@example.net>',
  'Subject: refused',
  'Date: Sun, 22 Nov 2026 10:00:00 +0000',
  'Message-ID: <refused@example.com>',
  '',
  'Body',
  '',
].join('\r\n');
const RETRY_MS = 1000;

/** An upstream that refuses gone@example.net with 550 and takes everything else; `onRefusal` runs before the 550 goes out. */
async function refusingSink(onRefusal: () => void) {
  const refusals: number[] = [];
  const notices: string[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    closeTimeout: 500,
    logger: false,
    onRcptTo(address: SMTPServerAddress, _session, callback) {
      if (address.address !== 'gone@example.net') return callback();
      refusals.push(Date.now());
      onRefusal();
      callback(Object.assign(new Error('5.1.1 no such user'), { responseCode: 550 }));
    },
    onData(stream, session, callback) {
      const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
      stream.resume();
      stream.on('end', () => {
        if (from === '') notices.push(session.envelope.rcptTo.map((r) => r.address).join(','));
        callback(null, 'Ok');
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as { port: number }).port;
  return { port, refusals, notices, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

test('a bounce the full spool cannot take: one upstream session, then the back-off; the notice goes once space returns', async () => {
  // Full from the first refusal until the test frees the space.
  let spoolFull = false;
  let filled = false;
  const sink = await refusingSink(() => {
    if (!filled) spoolFull = filled = true;
  });
  const relay = await startTestRelay(
    {
      delivery: { mode: 'queue', upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port } },
      queue: { retryAfter: `${RETRY_MS / 1000}s`, maxRetryInterval: '1h' },
      bounce: { from: 'mailer-daemon@example.com' },
    },
    (store) => store.generate({ domain: 'example.com', algorithm: 'rsa', bits: 2048, activate: true }),
    { closeTimeoutMs: 2000 },
  );
  const queue = relay.relay.queue!;
  // The spool fills the moment the upstream refuses: the message itself is in, its bounce cannot be
  // written (a notice is small: it would go into queue.db with its rows).
  const enqueue = queue.index.enqueue.bind(queue.index);
  queue.index.enqueue = (message) =>
    spoolFull ? Promise.reject(new SpoolUnavailableError('full', 'SQLITE_FULL', 'database or disk is full (injected)')) : enqueue(message);
  const client = nodemailer.createTransport({ host: '127.0.0.1', port: relay.port, secure: false, ignoreTLS: true, logger: false });
  try {
    const info = await client.sendMail({ envelope: { from: 'payroll@example.com', to: ['gone@example.net'] }, raw: RAW });
    const id = /queued as (\S+)/.exec(info.response)?.[1];
    assert.ok(id, info.response);
    const row = () => queue.index.show(id)?.recipients[0];

    // Until the attempt is recorded, or the upstream has seen more sessions than a back-off allows.
    await until('the attempt to be recorded', () => (row()?.attempts ?? 0) >= 1 || sink.refusals.length > 3);
    assert.equal(sink.refusals.length, 1, `upstream sessions for the one message before its next scheduled attempt: ${sink.refusals.length}`);
    const waiting = row()!;
    assert.equal(waiting.state, 'deferred');
    assert.deepEqual([waiting.lastReply?.code, waiting.lastReply?.enhanced], [451, '4.3.1']);
    assert.match(waiting.lastReply!.text, /could not be queued \(spool disk is full \(SQLITE_FULL\).*last reply: 550 5\.1\.1 no such user/);
    // The first retry's wait, retryAfter less up to the jitter, counted from the moment the attempt is recorded
    // (no later than the row's updatedAt) and so no sooner than the refusal.
    const sinceRefusal = waiting.nextAttemptAt - sink.refusals[0]!;
    const sinceRecord = waiting.nextAttemptAt - waiting.updatedAt;
    assert.ok(
      sinceRefusal >= RETRY_MS * (1 - DEFAULT_RETRY_POLICY.jitter) && sinceRecord <= RETRY_MS,
      `next attempt ${sinceRefusal} ms after the refusal, ${sinceRecord} ms after the record`,
    );

    // Space returns: the next attempt, not before its time, is refused again and the bounce goes out.
    spoolFull = false;
    await until('the notice', () => sink.notices.length === 1 && queue.index.depth().messages === 0);
    assert.equal(sink.refusals.length, 2, 'one more session, at the scheduled time');
    assert.ok(sink.refusals[1]! >= waiting.nextAttemptAt, `retried ${waiting.nextAttemptAt - sink.refusals[1]!} ms early`);
    assert.deepEqual(sink.notices, ['payroll@example.com']);
  } finally {
    client.close();
    await relay.close();
    await sink.close();
  }
});
