// Queue mode end to end over loopback: client → relay (spool, SQLite index,
// queue manager) → upstream sink; notices read back by Python's email parser
// and every signature checked by dkimpy.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import nodemailer from 'nodemailer';
import { configSchema } from '../../src/config/schema.ts';
import { verifyWithDkimpy } from '../helpers/independent-verify.ts';
import { startSink, startTestRelay, type Received, type Sink, type SinkBehaviour, type TestRelay } from '../helpers/relay-harness.ts';
import { flat, only, parseWithPython } from '../bounce/support.ts';
import { smallDisk } from './support.ts';
import { until } from '../helpers/until.ts';

const message = (subject: string, extra: string[] = []) =>
  [
    'From: Payroll <payroll@example.com>',
    'To: Alice <alice@example.net>',
    `Subject: ${subject}`,
    'Date: Sun, 22 Nov 2026 10:00:00 +0000',
    `Message-ID: <${subject.replace(/\W/g, '')}@example.com>`,
    ...extra,
    '',
    `Body of ${subject}`,
    '',
  ].join('\r\n');

type Reply = { ok: true; response: string } | { ok: false; code?: number; response: string };

async function submit(port: number, from: string, to: string[], raw: string, dsn?: Record<string, unknown>): Promise<Reply> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, logger: false });
  try {
    const info = await transport.sendMail({ envelope: { from, to }, raw, ...(dsn ? { dsn } : {}) } as never);
    return { ok: true, response: info.response };
  } catch (err) {
    const e = err as { responseCode?: number; response?: string; message: string };
    return { ok: false, code: e.responseCode, response: e.response ?? e.message };
  } finally {
    transport.close();
  }
}

async function queueRelay(sinkPort: number, queue: Record<string, unknown> = {}, more: Record<string, unknown> = {}): Promise<TestRelay> {
  return startTestRelay(
    {
      delivery: { mode: 'queue', upstream: { type: 'smtp', host: '127.0.0.1', port: sinkPort } },
      queue: { retryAfter: '1s', maxRetryInterval: '1s', ...queue },
      bounce: { from: 'mailer-daemon@example.com' },
      ...more,
    },
    (store) => store.generate({ domain: 'example.com', algorithm: 'rsa', bits: 2048, activate: true }),
    { closeTimeoutMs: 2000 },
  );
}

const spoolFiles = (relay: TestRelay) => readdirSync(join(relay.dir, 'spool', 'msg'));
const subjectOf = (r: Received) => /^Subject: (.*)$/m.exec(r.raw.toString('latin1'))?.[1];
const notices = (sink: Sink) => sink.received.filter((r) => r.from === '');
/** The relay's decisions to send no notice for a recipient (one log line each). */
const noNotice = (relay: TestRelay) => relay.logs.filter((l) => l.msg === 'no delivery status notification');

async function withRelay(
  behaviour: SinkBehaviour,
  queue: Record<string, unknown>,
  body: (sink: Sink, relay: TestRelay) => Promise<void>,
  more: Record<string, unknown> = {},
) {
  const sink = await startSink(behaviour);
  const relay = await queueRelay(sink.port, queue, more);
  try {
    await body(sink, relay);
  } finally {
    await relay.close();
    await sink.close();
  }
}

describe('queue mode', () => {
  test('answers 250 with the queue id, which names the message in Received:; the sink gets it signed; the spool empties', async () => {
    await withRelay({}, {}, async (sink, relay) => {
      const reply = await submit(relay.port, 'payroll@example.com', ['alice@example.net'], message('one'));
      assert.ok(reply.ok, reply.response);
      const id = /^250 2\.0\.0 Ok: queued as (\S+)$/.exec(reply.response)?.[1];
      assert.ok(id, reply.response);
      await until('delivery', () => sink.received.length === 1);
      const got = sink.received[0]!;
      assert.deepEqual([got.from, got.to], ['payroll@example.com', ['alice@example.net']]);
      assert.match(got.raw.toString('latin1'), new RegExp(`^Received: [^]*? id ${id}\\b`));
      assert.deepEqual(await verifyWithDkimpy(got.raw, relay.records()), [true]);
      await until('the spool to empty', () => spoolFiles(relay).length === 0 && relay.relay.queue!.index.depth().messages === 0);
    });
  });

  test('upstream down: everything queues; upstream back: everything delivered exactly once', async () => {
    const first = await startSink();
    const port = first.port;
    await first.close(); // down: connections to its port are refused
    const relay = await queueRelay(port);
    let sink: Sink | undefined;
    try {
      const replies = await Promise.all(
        Array.from({ length: 8 }, (_, i) => submit(relay.port, 'payroll@example.com', [`r${i}@example.net`], message(`down ${i}`))),
      );
      assert.ok(
        replies.every((r) => r.ok && r.response.includes('queued as')),
        JSON.stringify(replies),
      );
      await until(
        'attempts that fail',
        () =>
          relay.relay.queue!.index.list().every((m) => m.recipients === 1) &&
          relay.relay.queue!.index.show(relay.relay.queue!.index.list()[0]!.id)!.recipients[0]!.attempts >= 1,
      );
      assert.equal(relay.relay.queue!.index.depth().messages, 8);
      sink = await startSink({}, port);
      await until('all eight delivered', () => sink!.received.length >= 8 && relay.relay.queue!.index.depth().messages === 0);
      // No row is left to retry; a later message delivered and removed shows the manager has passed any attempt of the eight.
      assert.ok((await submit(relay.port, 'payroll@example.com', ['later@example.net'], message('later'))).ok);
      await until('the later message delivered', () => sink!.received.some((r) => subjectOf(r) === 'later') && relay.relay.queue!.index.depth().messages === 0);
      const subjects = sink.received
        .map(subjectOf)
        .filter((s) => s !== 'later')
        .sort();
      assert.deepEqual(subjects, Array.from({ length: 8 }, (_, i) => `down ${i}`).sort());
      assert.equal(notices(sink).length, 0);
    } finally {
      await relay.close();
      await sink?.close();
    }
  });

  test('5 recipients, 1 refused permanently: 4 delivered, and one signed DSN to the sender naming that one', async () => {
    await withRelay({ rcpt: { 'gone@example.net': { code: 550, text: '5.1.1 <gone@example.net>: no such user' } } }, {}, async (sink, relay) => {
      const to = ['a@example.net', 'b@example.net', 'gone@example.net', 'c@example.net', 'd@example.net'];
      const reply = await submit(relay.port, 'payroll@example.com', to, message('five'));
      assert.ok(reply.ok, reply.response);
      await until('delivery and the notice', () => sink.received.length === 2);
      const original = sink.received.find((r) => r.from === 'payroll@example.com')!;
      assert.deepEqual(original.to, ['a@example.net', 'b@example.net', 'c@example.net', 'd@example.net']);
      const [dsn] = notices(sink);
      assert.ok(dsn);
      assert.deepEqual(dsn.to, ['payroll@example.com']);
      const parsed = await parseWithPython(dsn.raw);
      assert.equal(parsed.type, 'multipart/report');
      assert.equal(parsed.params['report-type'], 'delivery-status');
      const status = parsed.parts[1]!.blocks!;
      assert.equal(status.length, 2, 'one per-message block and one recipient block');
      assert.equal(only(status[1]!, 'Final-Recipient'), 'rfc822; gone@example.net');
      assert.equal(only(status[1]!, 'Action'), 'failed');
      assert.equal(only(status[1]!, 'Status'), '5.1.1');
      assert.match(flat(only(status[1]!, 'Diagnostic-Code')), /550 5\.1\.1 <gone@example\.net>: no such user/);
      assert.deepEqual(await verifyWithDkimpy(dsn.raw, relay.records()), [true]);
      await until('the spool to empty', () => relay.relay.queue!.index.depth().messages === 0 && spoolFiles(relay).length === 0);
    });
  });

  test('a refusal at RCPT TO over a real session: the notice names the server that gave it (Remote-MTA) and quotes its reply (Diagnostic-Code)', async () => {
    await withRelay({ rcpt: { 'gone@example.net': { code: 550, text: '5.1.1 <gone@example.net>: no such user' } } }, {}, async (sink, relay) => {
      const reply = await submit(relay.port, 'payroll@example.com', ['gone@example.net'], message('remote'));
      assert.ok(reply.ok, reply.response);
      await until('the notice', () => notices(sink).length === 1);
      const parsed = await parseWithPython(notices(sink)[0]!.raw);
      const status = parsed.parts[1]!.blocks!;
      assert.equal(only(status[1]!, 'Final-Recipient'), 'rfc822; gone@example.net');
      // RFC 3464 §2.3.5: the upstream as configured (delivery.upstream.host), which answered the RCPT TO; an address as a literal.
      assert.equal(only(status[1]!, 'Remote-MTA'), 'dns; [127.0.0.1]');
      assert.equal(flat(only(status[1]!, 'Diagnostic-Code')), 'smtp; 550 5.1.1 <gone@example.net>: no such user');
      assert.match(flat(parsed.parts[0]!.text ?? ''), /The receiving server 127\.0\.0\.1 answered: 550 5\.1\.1 <gone@example\.net>: no such user/);
    });
  });

  test('a recipient answered 4xx is deferred, then delivered once the upstream takes it; no notice', async () => {
    const behaviour: SinkBehaviour = { rcpt: { 'later@example.net': { code: 451, text: '4.2.0 greylisted, come back' } } };
    await withRelay(behaviour, {}, async (sink, relay) => {
      assert.ok((await submit(relay.port, 'payroll@example.com', ['now@example.net', 'later@example.net'], message('grey'))).ok);
      await until('the first delivery', () => sink.received.length === 1);
      assert.deepEqual(sink.received[0]!.to, ['now@example.net']);
      // The sink holds the message a moment before the relay has read the upstream's reply and recorded the attempt.
      const index = relay.relay.queue!.index;
      const later = () => index.show(index.list()[0]!.id)!.recipients.find((r) => r.address === 'later@example.net')!;
      await until('the deferral recorded', () => later().state === 'deferred');
      assert.equal(later().lastReply?.code, 451);
      behaviour.rcpt = {};
      await until('the retry', () => sink.received.length === 2 && relay.relay.queue!.index.depth().messages === 0);
      assert.deepEqual(sink.received[1]!.to, ['later@example.net']);
      assert.equal(notices(sink).length, 0);
    });
  });

  test('queue.delayWarning: one signed "delayed" notice to the sender while the message stays queued, then delivered once the upstream takes it', async () => {
    const behaviour: SinkBehaviour = { rcpt: { 'slow@example.net': { code: 451, text: '4.2.0 greylisted, come back' } } };
    // Retries every second, so attempts at about 0 s, 1 s, 2 s, 3 s …: the warning falls due at the attempt after 2 s.
    await withRelay(behaviour, { delayWarning: '2s', maxAge: '1h' }, async (sink, relay) => {
      const index = relay.relay.queue!.index;
      assert.ok((await submit(relay.port, 'payroll@example.com', ['slow@example.net'], message('delayed'))).ok);
      await until('the delay notice', () => notices(sink).length === 1);
      const [notice] = notices(sink);
      assert.deepEqual(notice!.to, ['payroll@example.com']);
      const parsed = await parseWithPython(notice!.raw);
      assert.equal(parsed.type, 'multipart/report');
      assert.equal(parsed.params['report-type'], 'delivery-status');
      assert.equal(only(parsed.fields, 'Subject'), 'Delivery Status Notification (Delay)');
      const block = parsed.parts[1]!.blocks![1]!;
      assert.equal(only(block, 'Final-Recipient'), 'rfc822; slow@example.net');
      assert.equal(only(block, 'Action'), 'delayed');
      assert.equal(only(block, 'Status'), '4.2.0');
      assert.match(only(block, 'Will-Retry-Until'), /\d{4} \d\d:\d\d:\d\d [+-]\d{4}$/);
      assert.deepEqual(await verifyWithDkimpy(notice!.raw, relay.records()), [true]);

      // Still queued, and marked as warned.
      const [row] = index.list();
      assert.ok(row, 'the message is still in the queue');
      const waiting = index.show(row.id)!.recipients[0]!;
      assert.equal(waiting.state, 'deferred');
      assert.notEqual(waiting.delayWarnedAt, null);
      assert.equal(index.list().length, 1);

      // Two more failed attempts bring no second warning.
      const attempts = waiting.attempts;
      await until('two more attempts', () => (index.show(row.id)?.recipients[0]?.attempts ?? 0) >= attempts + 2);
      assert.equal(notices(sink).length, 1);

      behaviour.rcpt = {};
      await until('the delivery', () => sink.received.some((r) => r.from === 'payroll@example.com') && index.depth().messages === 0);
      const delivered = sink.received.filter((r) => r.from === 'payroll@example.com');
      assert.equal(delivered.length, 1);
      assert.deepEqual(delivered[0]!.to, ['slow@example.net']);
      assert.equal(subjectOf(delivered[0]!), 'delayed');
      assert.deepEqual(await verifyWithDkimpy(delivered[0]!.raw, relay.records()), [true]);
      assert.equal(notices(sink).length, 1, 'exactly one notice in all');
      await until('the spool to empty', () => spoolFiles(relay).length === 0);
    });
  });

  test('still refused temporarily at maxAge: bounced as expired, with a notice', async () => {
    await withRelay({ rcpt: { 'full@example.net': { code: 452, text: '4.2.2 mailbox full' } } }, { maxAge: '2s' }, async (sink, relay) => {
      assert.ok((await submit(relay.port, 'payroll@example.com', ['full@example.net'], message('expire'))).ok);
      await until('the notice', () => notices(sink).length === 1);
      const parsed = await parseWithPython(notices(sink)[0]!.raw);
      const block = parsed.parts[1]!.blocks![1]!;
      assert.equal(only(block, 'Action'), 'failed');
      assert.equal(only(block, 'Status'), '4.2.2');
      assert.equal(only(block, 'Final-Recipient'), 'rfc822; full@example.net');
      await until('the spool to empty', () => relay.relay.queue!.index.depth().messages === 0);
    });
  });

  test('no notice to the null sender, nor about Auto-Submitted mail', async () => {
    const refused: SinkBehaviour = { rcpt: { 'gone@example.net': { code: 550, text: '5.1.1 no such user' } } };
    await withRelay(refused, {}, async (sink, relay) => {
      assert.ok((await submit(relay.port, '', ['gone@example.net'], message('null sender'))).ok);
      assert.ok((await submit(relay.port, 'payroll@example.com', ['gone@example.net'], message('auto', ['Auto-Submitted: auto-generated']))).ok);
      // A control that does get one, so the wait below ends on a fact, not on time.
      assert.ok((await submit(relay.port, 'payroll@example.com', ['gone@example.net'], message('control'))).ok);
      // Each refusal's notice is decided once, in the line that says none goes: after both, and the control's delivered, no other can come.
      await until(
        'both decided and the control notice delivered',
        () => noNotice(relay).length >= 2 && relay.relay.queue!.index.depth().messages === 0 && notices(sink).length >= 1,
      );
      assert.deepEqual(
        noNotice(relay)
          .map((l) => l.reason)
          .sort(),
        ['auto-submitted', 'null-sender'],
      );
      assert.equal(notices(sink).length, 1);
      const parsed = await parseWithPython(notices(sink)[0]!.raw);
      assert.match(JSON.stringify(parsed.parts[2]), /Subject: control|"Subject","control"/);
    });
  });

  test('RET, ENVID, NOTIFY and ORCPT: stored, passed to an upstream that announces DSN, and honoured in notices', async () => {
    const refused: SinkBehaviour = {
      rcpt: { 'gone@example.net': { code: 550, text: '5.1.1 no such user' }, 'quiet@example.net': { code: 550, text: '5.1.1 no such user' } },
    };
    await withRelay(refused, {}, async (sink, relay) => {
      const a = await submit(relay.port, 'payroll@example.com', ['ok@example.net'], message('dsn pass'), {
        ret: 'HDRS',
        envid: 'ENV-1',
        notify: ['FAILURE'],
        orcpt: 'rfc822;orig@example.org',
      });
      assert.ok(a.ok, a.response);
      await until('delivery', () => sink.received.length === 1);
      assert.deepEqual([sink.received[0]!.mailArgs!.RET, sink.received[0]!.mailArgs!.ENVID], ['HDRS', 'ENV-1']);
      assert.deepEqual(sink.received[0]!.rcptArgs, [{ NOTIFY: 'FAILURE', ORCPT: 'rfc822;orig@example.org' }]);

      const b = await submit(relay.port, 'payroll@example.com', ['gone@example.net'], message('dsn hdrs', ['X-Secret-Body: no']), {
        ret: 'HDRS',
        envid: 'ENV-2',
        notify: ['FAILURE'],
        orcpt: 'rfc822;first@example.org',
      });
      assert.ok(b.ok, b.response);
      const c = await submit(relay.port, 'payroll@example.com', ['quiet@example.net'], message('dsn never'), { notify: ['NEVER'] });
      assert.ok(c.ok, c.response);
      await until(
        'settled',
        () => noNotice(relay).some((l) => l.to === 'quiet@example.net') && relay.relay.queue!.index.depth().messages === 0 && notices(sink).length >= 1,
      );
      assert.equal(notices(sink).length, 1, 'NOTIFY=NEVER silenced the other');
      const parsed = await parseWithPython(notices(sink)[0]!.raw);
      const [perMessage, recipient] = parsed.parts[1]!.blocks!;
      assert.equal(only(perMessage!, 'Original-Envelope-Id'), 'ENV-2');
      assert.equal(only(recipient!, 'Original-Recipient'), 'rfc822; first@example.org');
      assert.equal(parsed.parts[2]!.type, 'text/rfc822-headers', 'RET=HDRS returns the header only');
      assert.doesNotMatch(JSON.stringify(parsed.parts[2]), /Body of dsn hdrs/);
    });
  });

  test('bad RFC 3461 parameters are refused at the command', async () => {
    await withRelay({}, {}, async (_sink, relay) => {
      const r = await submit(relay.port, 'payroll@example.com', ['ok@example.net'], message('bad'), { envid: 'x'.repeat(120) });
      assert.equal(r.ok, false);
      assert.match(r.response, /^501 5\.5\.4 ENVID/);
    });
  });

  test('a full spool answers 452 4.3.1; once space returns, mail is taken and delivered', async (t) => {
    const disk = smallDisk(t, '1m');
    if (!disk) return;
    await withRelay({}, { dir: join(disk, 'spool') }, async (sink, relay) => {
      const { writeFileSync, rmSync } = await import('node:fs');
      const filler = join(disk, 'filler');
      try {
        writeFileSync(filler, Buffer.alloc(4 * 1024 * 1024));
      } catch {
        // ENOSPC: the disk is as full as it gets
      }
      const full = await submit(relay.port, 'payroll@example.com', ['alice@example.net'], message('full', [`X-Pad: ${'p'.repeat(900)}`]));
      assert.equal(full.ok, false);
      assert.match(full.response, /^452 4\.3\.1 /);
      rmSync(filler);
      const again = await submit(relay.port, 'payroll@example.com', ['alice@example.net'], message('room again'));
      assert.ok(again.ok, again.response);
      await until('delivery', () => sink.received.length === 1);
      assert.equal(subjectOf(sink.received[0]!), 'room again');
    });
  });

  test('sync mode stays: no spool, the upstream answers the client', async () => {
    const sink = await startSink({ rcpt: { 'gone@example.net': { code: 550, text: '5.1.1 no such user' } } });
    const relay = await startTestRelay({ delivery: { mode: 'sync', upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port } } }, (store) =>
      store.generate({ domain: 'example.com', algorithm: 'rsa', bits: 2048, activate: true }),
    );
    try {
      assert.equal(relay.relay.queue, undefined);
      const r = await submit(relay.port, 'payroll@example.com', ['gone@example.net'], message('sync'));
      assert.equal(r.ok, false);
      assert.match(r.response, /^550 5\.1\.1 no such user/);
    } finally {
      await relay.close();
      await sink.close();
    }
  });
});

test('configuration: queue is the default mode; signing.expireAfter must outlast queue.maxAge', () => {
  assert.equal(configSchema.parse({}).delivery.mode, 'queue');
  const bad = configSchema.safeParse({ signing: { expireAfter: '3d' }, queue: { maxAge: '5d' } });
  assert.equal(bad.success, false);
  assert.match(JSON.stringify(bad.error!.issues), /expireAfter.*longer than queue\.maxAge/);
  assert.equal(configSchema.safeParse({ signing: { expireAfter: '6d' }, queue: { maxAge: '5d' } }).success, true);
});
