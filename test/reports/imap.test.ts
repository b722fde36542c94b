// The report mailbox over real IMAP: a private dovecot, messages appended as
// receivers deliver them, read, imported and marked processed; a server that
// cannot be reached is a counted background failure, never an exception.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { BackgroundTask } from '../../src/common/background-tasks.ts';
import { Supervisor } from '../../src/common/supervisor.ts';
import { configSchema } from '../../src/config/schema.ts';
import { SqliteKeyStore } from '../../src/keys/store.ts';
import { readPasswordFile } from '../../src/config/imap-password-file.ts';
import { pollMailbox, type ImapSettings } from '../../src/reports/imap-source.ts';
import { importReport } from '../../src/reports/import.ts';
import { KeptReportStores } from '../../src/reports/kept-report-stores.ts';
import { ReportPoller } from '../../src/reports/poller.ts';
import { SqliteReportStore } from '../../src/reports/sqlite-report-store.ts';
import { dovecotMissing, imapClient, freePort, startDovecot, type Dovecot } from '../helpers/dovecot.ts';
import { tempDir } from '../helpers/tmp.ts';
import { FOREIGN, receiverMessages, reportMessage, reportXml } from './support.ts';

const missing = dovecotMissing();
if (missing && process.env.CI) throw new Error(`IMAP tests need dovecot: ${missing}`);
if (missing) console.log(`skipping the IMAP tests: ${missing}`);

const REPORTS = configSchema.parse({}).reports;

function passwordFile(password: string, mode = 0o600): string {
  const file = join(tempDir(), 'imap-password');
  writeFileSync(file, `${password}\n`, { mode });
  return file;
}

/** Flags of every message in a folder, by subject. */
async function folder(d: Dovecot, path: string): Promise<{ subject: string; seen: boolean }[]> {
  const c = await imapClient(d);
  try {
    const lock = await c.getMailboxLock(path);
    try {
      const all = await c.fetchAll('1:*', { envelope: true, flags: true }).catch(() => []);
      return all.map((m) => ({ subject: m.envelope?.subject ?? '', seen: m.flags?.has('\\Seen') ?? false }));
    } finally {
      lock.release();
    }
  } finally {
    await c.logout();
  }
}

describe('IMAP report mailbox', { skip: missing }, () => {
  let dovecot: Dovecot;
  before(async () => {
    dovecot = await startDovecot();
  });
  after(async () => {
    await dovecot?.stop();
  });

  function settings(extra: Partial<ImapSettings> = {}): ImapSettings {
    return {
      host: '127.0.0.1',
      port: dovecot.port,
      tls: 'none',
      user: dovecot.user,
      passwordFile: passwordFile(dovecot.password),
      folder: 'INBOX',
      intervalSeconds: 300,
      ...extra,
    };
  }

  test('without doneFolder: every unseen message is imported and flagged \\Seen; the next poll reads nothing', async () => {
    const box = 'Flagged';
    const c = await imapClient(dovecot);
    await c.mailboxCreate(box);
    for (const { message } of await receiverMessages()) await c.append(box, message);
    await c.append(
      box,
      await reportMessage('noreply-dmarc-support@google.com', 'Report domain: other.example', {
        filename: 'other.xml',
        content: reportXml(FOREIGN),
        contentType: 'text/xml',
      }),
    );
    await c.append(box, 'From: someone@example.net\r\nSubject: hello\r\n\r\nNot a report.\r\n');
    await c.logout();

    const reports = SqliteReportStore.open(join(tempDir(), 'keys.db'));
    const ctx = { reports, maxBytes: REPORTS.maxBytes, keepDays: 180, signingDomains: () => new Set(['example.com']) };
    const first = await pollMailbox(settings({ folder: box }), REPORTS.maxBytes, (data) => importReport(data, ctx));
    assert.deepEqual(
      first.map((p) => p.result.status),
      ['imported', 'imported', 'imported', 'imported', 'ignored', 'refused'],
    );
    assert.deepEqual(
      (await folder(dovecot, box)).map((m) => m.seen),
      [true, true, true, true, true, true],
    );
    const second = await pollMailbox(settings({ folder: box }), REPORTS.maxBytes, (data) => importReport(data, ctx));
    assert.deepEqual(second, []);
    reports.close();
  });

  test('with doneFolder: processed messages are moved there, created if missing; a message over maxBytes is refused unread', async () => {
    const box = 'Moving';
    const c = await imapClient(dovecot);
    await c.mailboxCreate(box);
    const [google] = await receiverMessages();
    await c.append(box, google!.message);
    await c.append(box, Buffer.concat([Buffer.from('Subject: big\r\n\r\n'), Buffer.alloc(4096, 'x')]));
    await c.logout();
    const reports = SqliteReportStore.open(join(tempDir(), 'keys.db'));
    const ctx = { reports, maxBytes: 4000, keepDays: 180, signingDomains: () => new Set(['example.com']) };
    const polled = await pollMailbox(settings({ folder: box, doneFolder: 'Moving/Done' }), 4000, (data) => importReport(data, ctx));
    assert.equal(polled[0]!.result.status, 'imported');
    assert.match(
      polled[1]!.result.status === 'refused' ? polled[1]!.result.reason : '',
      /message of \d+ octets, more than 4000 \(reports\.maxBytes\); not fetched/,
    );
    assert.deepEqual(await folder(dovecot, box), []);
    assert.equal((await folder(dovecot, 'Moving/Done')).length, 2);
    reports.close();
  });

  test('a wrong password is one line naming the server and the user, never the password', async () => {
    const reports = SqliteReportStore.open(join(tempDir(), 'keys.db'));
    const ctx = { reports, maxBytes: REPORTS.maxBytes, keepDays: 180, signingDomains: () => new Set(['example.com']) };
    await assert.rejects(
      pollMailbox(settings({ passwordFile: passwordFile('wrong-secret') }), REPORTS.maxBytes, (data) => importReport(data, ctx)),
      (err: Error) => {
        assert.equal(err.message, `IMAP 127.0.0.1:${dovecot.port} folder INBOX: login as ${dovecot.user} refused`);
        assert.ok(!err.message.includes('wrong-secret'));
        return true;
      },
    );
    reports.close();
  });
});

test('an IMAP server that cannot be reached is a logged, counted failure of dmarc-reports, and the poll ends', async () => {
  const port = await freePort();
  const keysDir = join(tempDir(), 'keys');
  const store = SqliteKeyStore.open(keysDir);
  const counted: BackgroundTask[] = [];
  const lines: string[] = [];
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk, _e, cb) {
        lines.push(String(chunk));
        cb();
      },
    }),
  );
  const supervisor = new Supervisor({ logger, metrics: { backgroundFailed: (task) => counted.push(task) } });
  const imap: ImapSettings = { host: '127.0.0.1', port, tls: 'none', user: 'u', passwordFile: passwordFile('p'), folder: 'INBOX', intervalSeconds: 300 };
  const poller = new ReportPoller({ config: { ...REPORTS, imap }, store, reports: new KeptReportStores(store), logger, supervisor });
  await poller.pollNow();
  await poller.pollNow();
  await poller.stop();
  store.close();
  assert.deepEqual(counted, ['dmarc-reports', 'dmarc-reports']);
  const [health] = supervisor.health();
  assert.equal(health!.task, 'dmarc-reports');
  assert.match(health!.cause, new RegExp(`^IMAP 127\\.0\\.0\\.1:${port} folder INBOX: .*ECONNREFUSED`));
  assert.equal(lines.filter((l) => l.includes('background task dmarc-reports failed')).length, 1, lines.join(''));
});

test('stopping the relay ends a look at a server that stalls, at once and without counting a failure', async () => {
  // A server that accepts the connection and never greets: the client would wait for its greeting timeout.
  const sockets: Socket[] = [];
  const silent = createServer();
  const connected = new Promise<void>((resolve) => {
    silent.on('connection', (socket) => {
      sockets.push(socket);
      resolve();
    });
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const port = (silent.address() as AddressInfo).port;
  const store = SqliteKeyStore.open(join(tempDir(), 'keys'));
  const counted: BackgroundTask[] = [];
  const supervisor = new Supervisor({ logger: pino({ level: 'silent' }), metrics: { backgroundFailed: (task) => counted.push(task) } });
  const imap: ImapSettings = { host: '127.0.0.1', port, tls: 'none', user: 'u', passwordFile: passwordFile('p'), folder: 'INBOX', intervalSeconds: 300 };
  const poller = new ReportPoller({ config: { ...REPORTS, imap }, store, reports: new KeptReportStores(store), logger: pino({ level: 'silent' }), supervisor });
  poller.start();
  await connected;
  const started = Date.now();
  await poller.stop();
  const took = Date.now() - started;
  store.close();
  for (const s of sockets) s.destroy();
  silent.close();
  assert.ok(took < 5000, `stop took ${took} ms`);
  assert.deepEqual(counted, []);
});

test('a password file others can read is refused, naming the mend', () => {
  const file = passwordFile('secret', 0o644);
  assert.throws(
    () => readPasswordFile(file),
    (err: Error) => {
      assert.match(err.message, /reports\.imap\.passwordFile .* is readable by others \(mode 0644\)/);
      assert.ok(!err.message.includes('secret'));
      return true;
    },
  );
  assert.equal(readPasswordFile(passwordFile('secret')), 'secret');
});

test('tls: none is accepted only towards a loopback address', () => {
  const imap = { host: 'imap.example.net', user: 'u', passwordFile: '/x', tls: 'none' };
  const refused = configSchema.safeParse({ reports: { imap } });
  assert.equal(refused.success, false);
  assert.match(JSON.stringify(refused.error?.issues), /clear text/);
  for (const host of ['127.0.0.1', '::1', 'localhost']) assert.ok(configSchema.safeParse({ reports: { imap: { ...imap, host } } }).success, host);
  const parsed = configSchema.parse({ reports: { imap: { ...imap, tls: 'implicit' } } }).reports;
  assert.deepEqual(
    { keepDays: parsed.keepDays, folder: parsed.imap!.folder, interval: parsed.imap!.intervalSeconds },
    { keepDays: 180, folder: 'INBOX', interval: 300 },
  );
});
