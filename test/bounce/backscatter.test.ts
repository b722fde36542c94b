// A notice is signed with the organisation's key, so it must never become a
// tool against third parties: it goes only to an envelope sender the client
// was allowed to use, quotes the remote server as inert, bounded data, and
// one address gets at most bounce.maxPerAddress of them per window.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import nodemailer from 'nodemailer';
import { pino } from 'pino';
import { buildDsn, type DsnRecipient } from '../../src/bounce/dsn.ts';
import { NoticeRate } from '../../src/bounce/notice-rate.ts';
import { REPLIES_OCTETS, REPLY_OCTETS } from '../../src/bounce/reply-quote.ts';
import { planNotices } from '../../src/bounce/suppression.ts';
import { configSchema } from '../../src/config/schema.ts';
import type { Envelope, Upstream, UpstreamReply } from '../../src/delivery/upstream.ts';
import { txtValue } from '../../src/keys/record.ts';
import { SqliteKeyStore } from '../../src/keys/store.ts';
import { retryPolicy } from '../../src/queue/backoff.ts';
import { QueueManager } from '../../src/queue/manager.ts';
import { QueueIndex } from '../../src/queue/queue-index.ts';
import { Spool } from '../../src/queue/spool.ts';
import { verifyWithDkimpy } from '../helpers/independent-verify.ts';
import { startSink, startTestRelay } from '../helpers/relay-harness.ts';
import { tempDir } from '../helpers/tmp.ts';
import { envelope } from '../queue/support.ts';
import { parseWithPython } from './support.ts';

const ORIGINAL = Buffer.from('From: a@example.com\r\nTo: b@example.net\r\nSubject: hello\r\n\r\nhello\r\n');

function request(recipients: DsnRecipient[]) {
  return {
    action: 'failed' as const,
    recipients,
    original: ORIGINAL,
    envelope: { sender: 'a@example.com', arrival: new Date('2026-11-22T10:00:00Z') },
    reportingMta: 'relay.example.com',
    from: 'mailer-daemon@example.com',
    returnContentLimit: 100 * 1024,
    date: new Date('2026-11-22T10:05:00Z'),
    messageId: '<dsn@example.com>',
  };
}

test('a hostile server reply is quoted inert: no field, part or encoded word of its own, no format characters', async () => {
  const hostile = [
    '5.1.1 no such user',
    'Content-Type: text/html',
    '',
    '--=_dsn_forged--',
    'From: "CEO" <ceo@example.com>',
    'Click =?utf-8?B?PGEgaHJlZj0iaHR0cHM6Ly9ldmlsLmV4YW1wbGUiPg==?= now',
    'safe\u202Etxt.exe\u200B\u0085end\x1b[31m red \r\nBcc: victim@example.org',
  ].join('\r\n');
  const dsn = buildDsn(request([{ address: 'b@example.net', reply: { code: 550, enhanced: '5.1.1', text: hostile }, lastAttempt: new Date() }]));
  const parsed = await parseWithPython(dsn.message);
  assert.equal(parsed.parts.length, 3, 'still three parts');
  assert.deepEqual(parsed.defects, []);
  assert.deepEqual(
    parsed.fields.map(([k]) => k),
    ['From', 'To', 'Subject', 'Date', 'Message-ID', 'MIME-Version', 'Auto-Submitted', 'Content-Type', 'Content-Transfer-Encoding'],
  );
  const human = parsed.parts[0]!.text!;
  const status = JSON.stringify(parsed.parts[1]!.blocks);
  for (const text of [human, status]) {
    assert.doesNotMatch(text, /=\?utf-8\?B\?/i, 'the encoded word is broken apart');
    assert.doesNotMatch(text, /[\u202E\u200B\u0085\x1b]/u, 'no format or control characters');
  }
  assert.match(human, /= \?utf-8\?B\?/, 'the text is still there to read');
  // Each reply line is indented under its code: none starts a line of its own.
  assert.doesNotMatch(human, /^(Bcc|From|Content-Type):/m);
  assert.equal(parsed.parts[1]!.blocks!.length, 2, 'one per-message block and one recipient block');
  assert.deepEqual(
    parsed.parts[1]!.blocks![1]!.map(([k]) => k),
    ['Final-Recipient', 'Action', 'Status', 'Diagnostic-Code', 'Last-Attempt-Date'],
  );
});

test("each reply is quoted up to 512 octets, all of a notice's replies up to 8 KiB", async () => {
  const long = { code: 550, enhanced: '5.7.1', text: `policy ${'x'.repeat(100_000)}` };
  const one = buildDsn(request([{ address: 'b@example.net', reply: long, lastAttempt: new Date() }]));
  assert.ok(one.message.length < 6000, `a notice quoting a 100 KB reply is ${one.message.length} octets`);
  const parsed = await parseWithPython(one.message);
  const quoted = /policy x+ \[\.\.\.\]/.exec(parsed.parts[0]!.text!.replace(/\s*\n\s*550 5\.7\.1 /g, ''))?.[0] ?? '';
  assert.ok(quoted.length > 400 && quoted.length <= REPLY_OCTETS, `quoted ${quoted.length} octets`);

  const many: DsnRecipient[] = Array.from({ length: 200 }, (_, i) => ({
    address: `r${i}@example.net`,
    reply: { code: 550, text: `${i} ${'#'.repeat(600)}` },
    lastAttempt: new Date(),
  }));
  const big = buildDsn(request(many));
  const ys = (big.message.toString('latin1').match(/#/g) ?? []).length;
  // Both parts quote the replies: within twice the total.
  assert.ok(ys > REPLIES_OCTETS && ys <= 2 * REPLIES_OCTETS, `${ys} octets of replies`);
  assert.equal((await parseWithPython(big.message)).parts[1]!.blocks!.length, 201, 'every recipient is still reported');
});

test('no notice to an envelope sender outside the domains the client was held to', () => {
  const outcomes = [{ recipient: 'b@example.net', action: 'failed' as const }];
  const reasons = (sender: string, domains: string[] | null) => planNotices(sender, ORIGINAL, outcomes, domains).suppressed.map((s) => s.reason);
  assert.deepEqual(reasons('victim@other.example', ['example.com']), ['sender-not-allowed']);
  assert.deepEqual(reasons('victim@example.com.other.example', ['example.com']), ['sender-not-allowed']);
  assert.deepEqual(reasons('no-domain', ['example.com']), ['sender-not-allowed']);
  assert.deepEqual(reasons('a@EXAMPLE.com', ['example.com']), []);
  assert.deepEqual(reasons('a@mail.example.com', ['example.com']), [], 'subdomains, as for From:');
  assert.deepEqual(reasons('victim@other.example', null), [], 'an unrestricted client: any sender');
});

test('NoticeRate: at most max per address and window, the first excess told once, a new window starts afresh', () => {
  const rate = new NoticeRate({ max: 2, windowMs: 3_600_000 });
  const t0 = Date.UTC(2026, 10, 22);
  assert.deepEqual(
    [0, 1, 2, 3].map((i) => rate.take('Victim@Example.org', t0 + i * 1000)),
    ['send', 'send', 'first-excess', 'excess'],
  );
  assert.equal(rate.take('other@example.org', t0 + 5000), 'send', 'per address');
  assert.equal(rate.take('victim@example.org', t0 + 3_599_999), 'excess');
  assert.deepEqual(
    [0, 1, 2].map((i) => rate.take('victim@example.org', t0 + 3_600_000 + i)),
    ['send', 'send', 'first-excess'],
  );
  rate.refund('victim@example.org', t0 + 3_600_003);
  assert.equal(rate.take('victim@example.org', t0 + 3_600_004), 'send', 'a notice that could not be queued does not count');
  const small = new NoticeRate({ max: 1, windowMs: 1000, maxAddresses: 3 });
  for (let i = 0; i < 10; i++) assert.equal(small.take(`a${i}@example.org`, t0), 'send', 'a full table forgets its oldest windows');
});

/** An upstream that refuses every recipient of mail and takes every notice (null sender). */
function refusingUpstream(notices: { env: Envelope; raw: Buffer }[]): Upstream {
  return {
    name: 'refusing upstream',
    traits: { dualSign: false, eightBitMime: true, smtpUtf8: true, provisional: false },
    ready: async () => {},
    close: async () => {},
    async deliver(env, message): Promise<UpstreamReply> {
      if (env.from === '') {
        const chunks: Buffer[] = [];
        for await (const c of message.chunks()) chunks.push(Buffer.from(c));
        notices.push({ env, raw: Buffer.concat(chunks) });
        const ok = { code: 250, enhanced: '2.0.0', text: 'Ok' };
        return { ...ok, recipients: env.to.map((address) => ({ address, reply: ok })) };
      }
      const no = { code: 550, enhanced: '5.1.1', text: 'no such user' };
      return { ...no, recipients: env.to.map((address) => ({ address, reply: no })) };
    },
  };
}

async function waitFor(what: string, done: () => boolean, ms = 15_000): Promise<void> {
  for (let i = 0; i < ms / 20; i++) {
    if (done()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('the queue sends no notice to a sender the client could not use, and at most maxPerAddress to one address, with one log line', async () => {
  const dir = tempDir();
  const config = configSchema.parse({ bounce: { from: 'mailer-daemon@example.com', maxPerAddress: 2, addressWindow: '1h' }, keys: { dir: join(dir, 'keys') } });
  const store = SqliteKeyStore.open(join(dir, 'keys'));
  store.generate({ domain: 'example.com', algorithm: 'ed25519', activate: true });
  const spool = new Spool(join(dir, 'spool'));
  const index = QueueIndex.open(join(dir, 'spool', 'queue.db'));
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk, _e, cb) {
        lines.push(JSON.parse(String(chunk)));
        cb();
      },
    }),
  );
  const notices: { env: Envelope; raw: Buffer }[] = [];
  const upstream = refusingUpstream(notices);

  // One from a client held to example.com naming a stranger as sender; five from an unrestricted one to one address.
  const forged = await spool.write(ORIGINAL);
  await index.enqueue(envelope(forged.id, forged.size, ['b@example.net'], { sender: 'victim@other.example', senderDomains: ['example.com'] }));
  for (let i = 0; i < 5; i++) {
    const stored = await spool.write(ORIGINAL);
    await index.enqueue(envelope(stored.id, stored.size, [`b${i}@example.net`], { sender: 'flooded@example.org' }));
  }
  const manager = new QueueManager({
    spool,
    index,
    upstream,
    logger,
    policy: retryPolicy(config.queue),
    notices: { config, store, traits: () => upstream.traits, hostname: 'relay.example.com' },
    workers: 1,
  });
  try {
    manager.start();
    // Each notice is queued mail too: wait until every original and every notice is gone.
    await waitFor('the queue to empty', () => index.depth().messages === 0);
  } finally {
    await manager.stop(5000);
    index.close();
  }
  const records = Object.fromEntries(store.list().map((k) => [`${k.selector}._domainkey.${k.domain}`, txtValue(k)]));
  store.close();
  assert.deepEqual(
    notices.map((n) => n.env.to),
    [['flooded@example.org'], ['flooded@example.org']],
  );
  assert.deepEqual(await verifyWithDkimpy(notices[0]!.raw, records), [true], 'the notices that do go out are signed');
  const refused = lines.filter((l) => l.reason === 'sender-not-allowed');
  assert.equal(refused.length, 1);
  assert.equal(refused[0]!.sender, 'victim@other.example');
  const limited = lines.filter((l) => String(l.msg).includes('bounce.maxPerAddress'));
  assert.equal(limited.length, 1, 'one line per address and window');
  assert.equal(limited[0]!.to, 'flooded@example.org');
});

test('the relay records at intake which senders the client was held to', async () => {
  const sink = await startSink({ rcpt: { 'later@example.net': { code: 451, text: '4.2.0 try later' } } });
  const relay = await startTestRelay(
    {
      delivery: { mode: 'queue', upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port } },
      queue: { retryAfter: '1h', maxRetryInterval: '1h' },
      access: { networks: ['127.0.0.0/8'] },
      clients: [{ networks: ['127.0.0.2/32'], domains: ['example.com'] }],
    },
    (store) => store.generate({ domain: 'example.com', algorithm: 'ed25519', activate: true }),
    { closeTimeoutMs: 2000 },
  );
  try {
    const raw = 'From: a@example.com\r\nTo: later@example.net\r\nSubject: x\r\n\r\nx\r\n';
    for (const localAddress of ['127.0.0.1', '127.0.0.2']) {
      const transport = nodemailer.createTransport({ host: '127.0.0.1', port: relay.port, localAddress, secure: false, ignoreTLS: true, logger: false });
      try {
        await transport.sendMail({ envelope: { from: 'a@example.com', to: ['later@example.net'] }, raw });
      } finally {
        transport.close();
      }
    }
    const index = relay.relay.queue!.index;
    const rows = index.list().map((m) => index.show(m.id)!);
    assert.deepEqual(rows.map((m) => [m.client, m.senderDomains]).sort(), [
      ['127.0.0.1', null],
      ['127.0.0.2', ['example.com']],
    ]);
  } finally {
    await relay.close();
    await sink.close();
  }
});
