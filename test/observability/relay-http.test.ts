// The metrics listener of a real relay: messages sent over SMTP show up in
// /metrics (read back by python3-prometheus-client's parser), /healthz turns
// 503 when a key file breaks, /readyz turns 503 while the relay drains, and
// the status page, loaded in headless Chromium, shows keys, DNS, DMARC
// readiness and counts, with a hostile From: shown as text.
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { chromium, type Browser } from 'playwright-core';
import { finding } from '../../src/dns/finding.ts';
import { migrate } from '../../src/keys/migrations.ts';
import { metrics } from '../../src/observability/metrics.ts';
import { rawSession } from '../helpers/raw-smtp.ts';
import { send, startSink, startTestRelay, type Sink, type TestRelay } from '../helpers/relay-harness.ts';
import { get, parseExposition, value } from './support.ts';
import { requireTool } from '../helpers/tools.ts';

const message = (from: string) =>
  `From: ${from}\r\nTo: b@example.net\r\nSubject: watching\r\nDate: Sat, 28 Nov 2026 03:15:00 +0000\r\nMessage-ID: <w1@example.com>\r\n\r\nHello.\r\n`;
const HOSTILE = 'a@<script>alert(1)</script>.example';

describe('a running relay, watched', () => {
  let sink: Sink;
  let relay: TestRelay;
  let port = 0;
  let browser: Browser | undefined;
  let stopped = false;

  before(async () => {
    sink = await startSink();
    relay = await startTestRelay(
      {
        signing: { unknownDomain: 'reject' },
        dns: { resolvers: ['192.0.2.53:53'] },
        delivery: { upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port } },
      },
      (store) => {
        store.generate({ domain: 'example.com', algorithm: 'rsa', bits: 2048, activate: true });
        store.generate({ domain: 'example.com', algorithm: 'ed25519' });
      },
    );
    port = relay.relay.ports.metrics!;
    assert.ok(port > 0 && port !== relay.port, 'the metrics listener has a port of its own');
  });
  after(async () => {
    await browser?.close();
    if (stopped) rmSync(relay.dir, { recursive: true, force: true });
    else await relay.close();
    await sink.close();
  });

  test('/metrics counts a signed and a refused message, and parses as Prometheus exposition', async () => {
    const before = await parseExposition((await get(port, '/metrics')).body);
    const signed = await send({ port: relay.port, from: 'a@example.com', to: ['b@example.net'], raw: message('a@example.com') });
    assert.ok(signed.ok, JSON.stringify(signed));
    const refused = await send({ port: relay.port, from: 'a@other.example', to: ['b@example.net'], raw: message('a@other.example') });
    assert.equal(refused.ok, false);

    const answer = await get(port, '/metrics');
    assert.equal(answer.status, 200);
    assert.match(String(answer.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const samples = await parseExposition(answer.body);
    const selector = relay.store.list('example.com').find((k) => k.state === 'active')!.selector;
    const grew = (name: string, labels: Record<string, string> = {}) => (value(samples, name, labels) ?? 0) - (value(before, name, labels) ?? 0);
    assert.equal(grew('dkim_relay_messages_received_total'), 2);
    assert.equal(grew('dkim_relay_messages_signed_total', { domain: 'example.com', selector }), 1);
    assert.equal(grew('dkim_relay_messages_refused_total', { reason: 'no-key' }), 1);
    assert.equal(grew('dkim_relay_messages_delivered_total', { domain: 'example.com' }), 1);
    assert.equal(grew('dkim_relay_self_check_failures_total', { domain: 'example.com' }), 0);
    assert.equal(grew('dkim_relay_delivery_seconds_count'), 1);
    assert.equal(
      value(samples, 'dkim_relay_messages_refused_total', { reason: 'self-check' }) !== undefined,
      true,
      'every refusal reason is exposed, at 0 until it happens',
    );
    // The key store, read at scrape time.
    assert.equal(value(samples, 'dkim_relay_key_state', { domain: 'example.com', selector, state: 'active' }), 1);
    assert.equal(value(samples, 'dkim_relay_key_state', { domain: 'example.com', selector, state: 'pending' }), 0);
    assert.ok(
      samples.some((s) => s.name === 'process_cpu_user_seconds_total'),
      "prom-client's process metrics are there",
    );
    // No label carries a sender or recipient.
    assert.ok(!answer.body.includes('other.example') && !answer.body.includes('example.net'), 'no From: domain or recipient appears as a label');
  });

  test('/healthz is 200 with every check passing', async () => {
    const answer = await get(port, '/healthz');
    assert.equal(answer.status, 200, answer.body);
    const body = JSON.parse(answer.body) as { status: string; checks: { name: string; ok: boolean }[] };
    assert.equal(body.status, 'ok');
    assert.deepEqual(
      body.checks.map((c) => [c.name, c.ok]),
      [
        ['listener', true],
        ['spool', true],
        ['key-store', true],
        ['signing-keys', true],
      ],
    );
  });

  test('the status page in Chromium: the domain, its keys on a timeline, DNS, DMARC readiness, counts, and a hostile From: as text', async (t) => {
    if (!requireTool(t, 'chromium')) return;
    // What the rotation scheduler's DNS check and a DMARC lookup would have left behind.
    const pending = relay.store.list('example.com').find((k) => k.state === 'pending')!;
    const db = new Database(relay.store.dbFile);
    migrate(db); // the version of the store that has dns_observations
    const now = new Date().toISOString();
    db.prepare('INSERT INTO dns_observations (key_id, server, first_seen_matching, last_checked, last_state, detail) VALUES (?, ?, ?, ?, ?, ?)').run(
      pending.id,
      '192.0.2.53:53',
      now,
      now,
      'match',
      'serves this key',
    );
    db.close();
    metrics.readinessChecked(
      new Map([
        [
          'example.com',
          {
            status: 'checked',
            server: '192.0.2.53:53',
            spf: 'v=spf1 mx -all',
            dmarc: 'v=DMARC1; p=none; rua=mailto:d@example.com',
            findings: [finding('info', 'dmarc-none', 'p=none: reports only, receivers do not act on failing mail')],
          },
        ],
      ]),
    );
    const hostile = await send({ port: relay.port, from: 'a@example.com', to: ['b@example.net'], raw: message(HOSTILE) });
    assert.equal(hostile.ok, false);

    const raw = await get(port, '/');
    assert.equal(raw.status, 200);
    assert.match(String(raw.headers['content-type']), /^text\/html/);
    assert.ok(!raw.body.includes('<script>'), 'the From: text is escaped in the HTML itself');
    assert.ok(raw.body.includes('&#60;script&#62;alert(1)&#60;/script&#62;'));

    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
    const page = await browser.newPage({ javaScriptEnabled: false, viewport: { width: 1200, height: 900 } });
    let dialogs = 0;
    page.on('dialog', (d) => {
      dialogs++;
      void d.dismiss();
    });
    await page.goto(`http://127.0.0.1:${port}/`, { timeout: 20_000 });
    const domain = page.locator('section[data-domain="example.com"]');
    assert.equal(await domain.locator('h2').textContent(), 'example.com');
    const active = domain.locator('.key[data-state="active"]');
    assert.equal(await active.count(), 1);
    assert.match((await active.textContent())!, /rsa 2048/);
    assert.match((await active.locator('.stage.current').textContent())!, /^active/);
    const waiting = domain.locator(`.key[data-selector="${pending.selector}"]`);
    assert.match((await waiting.textContent())!, /192\.0\.2\.53:53 match/);
    assert.match((await waiting.textContent())!, /next: activates \d{4}-\d\d-\d\d \d\d:\d\d UTC if DNS keeps serving it/);
    assert.match((await domain.textContent())!, /DMARC none/);
    const cells = async (event: string) => (await page.locator(`#counts tr[data-count="${event}"] td`).allTextContents()).slice(1).map(Number);
    assert.deepEqual(await cells('signed'), [1, 1]);
    assert.deepEqual(await cells('received'), [3, 3]);
    assert.deepEqual(await cells('refused'), [2, 2]);
    assert.deepEqual(await cells('delivered'), [1, 1]);
    assert.deepEqual(await cells('selfCheckPassed'), [1, 1]);
    assert.match((await page.locator('#queue').textContent())!, /none/);
    const refusals = await page.locator('#refusals').textContent();
    assert.ok(refusals!.includes('<script>alert(1)</script>.example'), 'the hostile text is shown as text');
    assert.equal(await page.locator('script').count(), 0, 'and is no element');
    assert.equal(dialogs, 0);
    const shot = process.env.STATUS_PAGE_SCREENSHOT ?? join(relay.dir, 'status-page.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(statSync(shot).size > 10_000, 'a screenshot with something in it');
  });

  test('/healthz is 503, naming the key, when an active key file is replaced by a directory', async () => {
    const key = relay.store.list('example.com').find((k) => k.state === 'active')!;
    const file = join(relay.store.dir, key.file);
    renameSync(file, `${file}.away`);
    mkdirSync(file);
    const answer = await get(port, '/healthz');
    assert.equal(answer.status, 503);
    const body = JSON.parse(answer.body) as { status: string; failed: string[]; checks: { name: string; ok: boolean; detail: string }[] };
    assert.equal(body.status, 'fail');
    assert.deepEqual(body.failed, ['signing-keys']);
    assert.match(
      body.checks.find((c) => c.name === 'signing-keys')!.detail,
      new RegExp(`key file .*${key.file} for ${key.selector}\\._domainkey\\.example\\.com is not a regular file`),
    );
  });

  test('/readyz is 200, then 503 while the relay drains a session in flight', async () => {
    assert.equal((await get(port, '/readyz')).status, 200);
    const session = await rawSession(relay.port);
    assert.match((await session.reply(1, 5000)) ?? '', /^220 /);
    session.write('EHLO client.test\r\n');
    await session.reply(2, 5000);
    const stopping = relay.relay.stop();
    const draining = await get(port, '/readyz');
    assert.equal(draining.status, 503);
    assert.equal(draining.body, 'draining\n');
    session.write('QUIT\r\n');
    await session.closed;
    await stopping;
    await assert.rejects(get(port, '/readyz'), 'the listener is closed once the relay has stopped');
    stopped = true;
  });

  test('queue mode: a queued message counts as deferred while the upstream is down, and as delivered once when it takes it', async () => {
    const down = await startSink();
    const upstreamPort = down.port;
    await down.close(); // the upstream is down until it is started again on this port
    const queued = await startTestRelay(
      {
        delivery: { mode: 'queue', upstream: { type: 'smtp', host: '127.0.0.1', port: upstreamPort, timeoutSeconds: 2 } },
        queue: { retryAfter: '1s', maxRetryInterval: '1s' },
      },
      (store) => void store.generate({ domain: 'example.com', algorithm: 'rsa', bits: 2048, activate: true }),
    );
    let upstream: Sink | undefined;
    try {
      const metricsPort = queued.relay.ports.metrics!;
      const before = await parseExposition((await get(metricsPort, '/metrics')).body);
      const grew = async (name: string) =>
        (value(await parseExposition((await get(metricsPort, '/metrics')).body), name, { domain: 'example.com' }) ?? 0) -
        (value(before, name, { domain: 'example.com' }) ?? 0);
      const sent = await send({ port: queued.port, from: 'a@example.com', to: ['b@example.net'], raw: message('a@example.com') });
      assert.ok(sent.ok && /queued as/.test(sent.response), JSON.stringify(sent));
      for (let i = 0; i < 100 && (await grew('dkim_relay_messages_deferred_total')) === 0; i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok((await grew('dkim_relay_messages_deferred_total')) >= 1, 'a failed attempt counts as deferred');
      assert.equal(await grew('dkim_relay_messages_delivered_total'), 0, 'a 250 to the client is not a delivery');
      const waiting = await parseExposition((await get(metricsPort, '/metrics')).body);
      assert.ok((value(waiting, 'dkim_relay_queue_db_bytes', { pages: 'used' }) ?? 0) > 0, "queue.db's pages in use are reported");
      assert.notEqual(value(waiting, 'dkim_relay_queue_db_bytes', { pages: 'free' }), undefined, 'and its free ones');
      // The status page says the same in its queue line.
      assert.match((await get(metricsPort, '/')).body, /<p id="queue">Queue: .*1 message.*queue\.db \d+\.\d MiB, \d+\.\d MiB of it free/);
      upstream = await startSink({}, upstreamPort);
      for (let i = 0; i < 100 && upstream.received.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(upstream.received.length, 1, 'the queue delivered it once the upstream was back');
      for (let i = 0; i < 40 && (await grew('dkim_relay_messages_delivered_total')) === 0; i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(await grew('dkim_relay_messages_delivered_total'), 1);
    } finally {
      await queued.close();
      await upstream?.close();
    }
  });
});
