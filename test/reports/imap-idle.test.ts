// The running relay's watch on the report mailbox: with IDLE, a report
// appended while the poll interval is an hour is imported as it arrives; a
// dropped connection is a counted failure and the relay connects again after
// a back-off; a server without IDLE is looked at every interval.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, test } from 'node:test';
import pino from 'pino';
import type { BackgroundTask } from '../../src/common/background-tasks.ts';
import { Supervisor } from '../../src/common/supervisor.ts';
import { configSchema } from '../../src/config/schema.ts';
import { SqliteKeyStore } from '../../src/keys/store.ts';
import type { ImapSettings } from '../../src/reports/imap-source.ts';
import { KeptReportStores } from '../../src/reports/kept-report-stores.ts';
import { reconnectDelayMs, ReportPoller } from '../../src/reports/poller.ts';
import { SqliteReportStore } from '../../src/reports/sqlite-report-store.ts';
import { dovecotMissing, imapClient, startDovecot, type Dovecot } from '../helpers/dovecot.ts';
import { tempDir } from '../helpers/tmp.ts';
import { until } from '../helpers/until.ts';
import { GOOGLE, gzip, reportMessage, reportXml, YAHOO } from './support.ts';

const missing = dovecotMissing();
if (missing && process.env.CI) throw new Error(`IMAP tests need dovecot: ${missing}`);

const REPORTS = configSchema.parse({}).reports;
const HOUR = 3600;

test('reconnecting: at the interval after a clean end; after failures 5 s, doubling, never past the interval', () => {
  assert.equal(reconnectDelayMs(0, 300), 300_000);
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 7].map((n) => reconnectDelayMs(n, 300)),
    [5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000],
  );
  assert.equal(reconnectDelayMs(1000, 60), 60_000);
});

/** A relay's report watch with its log lines and counted failures, against a key store holding a key for example.com. */
async function watcher(imap: Partial<ImapSettings> & Pick<ImapSettings, 'port' | 'intervalSeconds'>, d: Dovecot) {
  const dir = tempDir();
  const passwordFile = join(dir, 'imap-password');
  writeFileSync(passwordFile, `${d.password}\n`, { mode: 0o600 });
  const store = SqliteKeyStore.open(join(dir, 'keys'));
  await store.generate({ domain: 'example.com', selector: 'relay1', algorithm: 'ed25519', activate: true });
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
  const counted: BackgroundTask[] = [];
  const supervisor = new Supervisor({ logger, metrics: { backgroundFailed: (task) => counted.push(task) } });
  const settings: ImapSettings = { host: '127.0.0.1', tls: 'none', user: d.user, passwordFile, folder: 'INBOX', ...imap };
  const poller = new ReportPoller({
    config: { ...REPORTS, imap: settings },
    store,
    reports: new KeptReportStores(store),
    logger,
    supervisor,
    retryFirstMs: 200,
  });
  const logged = (pattern: RegExp) => lines.filter((l) => pattern.test(l)).length;
  const storedIds = () => {
    const reports = SqliteReportStore.open(store.dbFile);
    try {
      return [...new Set(reports.records(0).map((r) => r.reportId))];
    } finally {
      reports.close();
    }
  };
  return {
    poller,
    lines,
    counted,
    logged,
    storedIds,
    async stop() {
      await poller.stop();
      store.close();
    },
  };
}

async function deliver(d: Dovecot, spec = GOOGLE): Promise<void> {
  const c = await imapClient(d);
  await c.append(
    'INBOX',
    await reportMessage(spec.email, `Report domain: ${spec.domain} Report-ID: ${spec.reportId}`, {
      filename: `${spec.org}!${spec.domain}!${spec.begin}!${spec.end}.xml.gz`,
      content: gzip(reportXml(spec)),
      contentType: 'application/gzip',
    }),
  );
  await c.logout();
}

/** A TCP relay to dovecot whose connections the test can cut, as a network that drops them. */
async function cuttableProxy(port: number) {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer((inbound) => {
    accepted++;
    const outbound = connect(port, '127.0.0.1');
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    inbound.pipe(outbound).pipe(inbound);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    accepted: () => accepted,
    cut: () => {
      for (const s of sockets) s.destroy();
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('IMAP IDLE', { skip: missing }, () => {
  const started: Dovecot[] = [];
  after(async () => {
    for (const d of started) await d.stop();
  });

  test('with the poll interval an hour, a report appended while the relay idles is imported as it arrives', async () => {
    const d = await startDovecot();
    started.push(d);
    const w = await watcher({ port: d.port, intervalSeconds: HOUR }, d);
    try {
      w.poller.start();
      await until('the relay idling', () => w.logged(/waiting in IDLE/) === 1);
      await deliver(d);
      await until('the report imported', () => w.logged(/imported report 13658716391290476873 from google\.com/) === 1, { timeoutMs: 20_000 });
      assert.deepEqual(w.storedIds(), [GOOGLE.reportId]);
      // Still idling on the same connection: a second report arrives the same way.
      await deliver(d, YAHOO);
      await until('the second report imported', () => w.logged(/imported report 1733356800\.786291 from Yahoo/) === 1, { timeoutMs: 20_000 });
      assert.equal(w.logged(/waiting in IDLE/), 1);
      assert.deepEqual(w.counted, []);
    } finally {
      await w.stop();
    }
  });

  test('a connection dropped while idling is a counted failure; the relay connects again and imports what arrived', async () => {
    const d = await startDovecot();
    started.push(d);
    const proxy = await cuttableProxy(d.port);
    const w = await watcher({ port: proxy.port, intervalSeconds: HOUR }, d);
    try {
      w.poller.start();
      await until('the relay idling', () => w.logged(/waiting in IDLE/) === 1);
      proxy.cut();
      await until('the failure counted', () => w.counted.length === 1);
      assert.equal(w.logged(/background task dmarc-reports failed/), 1, w.lines.join(''));
      await until('the relay idling again', () => w.logged(/waiting in IDLE/) === 2, { timeoutMs: 20_000 });
      assert.equal(w.logged(/background task dmarc-reports works again/), 1, w.lines.join(''));
      await deliver(d);
      await until('the report imported', () => w.logged(/imported report 13658716391290476873/) === 1, { timeoutMs: 20_000 });
      assert.deepEqual(w.counted, ['dmarc-reports']);
    } finally {
      await w.stop();
      proxy.cut();
      await proxy.close();
    }
  });

  test('a server without IDLE is looked at every interval instead, on a connection of its own each time', async () => {
    const d = await startDovecot({ idle: false });
    started.push(d);
    const proxy = await cuttableProxy(d.port);
    const w = await watcher({ port: proxy.port, intervalSeconds: 1 }, d);
    try {
      w.poller.start();
      await until('two looks, each on its own connection', () => proxy.accepted() >= 2, { timeoutMs: 20_000 });
      await deliver(d);
      await until('the report imported', () => w.logged(/imported report 13658716391290476873/) === 1, { timeoutMs: 20_000 });
      assert.equal(w.logged(/waiting in IDLE/), 0);
      assert.deepEqual(w.counted, []);
    } finally {
      await w.stop();
      await proxy.close();
    }
  });
});
