// Two `serve` relays of a fleet on one PostgreSQL key store, both watching the
// same report mailbox in IDLE and moving what they read to a done folder: each
// report is stored once, whichever relay took it; a message the other relay
// moved away under it is not a refusal; both relays' /metrics and status
// pages, and `status --json`, show the same numbers; each relay keeps one
// pool to the report tables for its life and closes it when it stops.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { StatusReport } from '../../src/observability/status-report.ts';
import { MailboxSession, type ImapSettings } from '../../src/reports/imap-source.ts';
import type { ImportResult } from '../../src/reports/import.ts';
import { dkimRelay, serve, type Served } from '../cli/support.ts';
import { dovecotMissing, imapClient, freePort, startDovecot, type Dovecot } from '../helpers/dovecot.ts';
import { startSink, type Sink } from '../helpers/relay-harness.ts';
import { tempDir } from '../helpers/tmp.ts';
import { until } from '../helpers/until.ts';
import { postgresOrSkip, startPgCluster, type PgCluster } from '../keys/postgres/pg-cluster.ts';
import { kekFile, metricsPort } from '../keys/postgres/support.ts';
import { EXPECTED, receiverMessages } from './support.ts';

const missing = dovecotMissing();
if (missing && process.env.CI) throw new Error(`IMAP tests need dovecot: ${missing}`);
const pgSkip = postgresOrSkip();

/** Backends of the fleet's database whose last statement read or wrote the report tables: the relays' report pools. */
const REPORT_BACKENDS = `SELECT pid FROM pg_stat_activity WHERE datname = 'fleet' AND query ILIKE '%dmarc_re%' AND pid <> pg_backend_pid() ORDER BY pid`;

async function page(relay: Served, path: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${metricsPort(relay)}${path}`, { signal: AbortSignal.timeout(10_000) });
  assert.equal(res.status, 200, path);
  return res.text();
}

const imported = (relays: Served[]) => new Set(relays.flatMap((r) => [...r.output().matchAll(/imported report (\S+) from/g)].map((m) => m[1])));

describe('two relays on one PostgreSQL store and one report mailbox', { skip: missing ?? pgSkip.skip }, () => {
  let cluster: PgCluster;
  let dovecot: Dovecot;
  let sink: Sink;
  const dirs = [tempDir('dkim-relay-fleet-reports-'), tempDir('dkim-relay-fleet-reports-')];
  const configs: string[] = [];
  const relays: Served[] = [];

  before(async () => {
    cluster = await startPgCluster();
    dovecot = await startDovecot();
    sink = await startSink();
    const url = await cluster.createDatabase('fleet');
    const kek = kekFile(dirs[0]!);
    // Nothing answers DNS there: the readiness lookups fail at once, on loopback.
    const dnsPort = await freePort();
    for (const dir of dirs) {
      const password = join(dir, 'imap-password');
      writeFileSync(password, `${dovecot.password}\n`, { mode: 0o600 });
      const config = join(dir, 'dkim-relay.yaml');
      writeFileSync(
        config,
        `keys: {dir: ${join(dir, 'keys')}, database: "${url}", encryptionKeyFile: ${kek}}\nqueue: {dir: ${join(dir, 'queue')}}\n` +
          `listen: {host: 127.0.0.1, port: 0}\nmetrics: {listen: "127.0.0.1:0"}\nlog: {format: json}\nrotation: {check: "off"}\n` +
          `dns: {timeoutSeconds: 1, resolvers: ["127.0.0.1:${dnsPort}"]}\n` +
          `delivery: {mode: sync, upstream: {type: smtp, host: 127.0.0.1, port: ${sink.port}}}\n` +
          `reports: {imap: {host: 127.0.0.1, port: ${dovecot.port}, tls: none, user: ${dovecot.user}, passwordFile: ${password}, doneFolder: Processed, intervalSeconds: 3600}}\n`,
      );
      configs.push(config);
    }
    const generated = await dkimRelay(
      ['--config', configs[0]!, 'keys', 'generate', '--domain', 'example.com', '--selector', 'relay1', '--algorithm', 'ed25519', '--activate'],
      dirs[0]!,
    );
    assert.equal(generated.code, 0, generated.stderr);
    relays.push(...(await Promise.all(dirs.map((dir, i) => serve(['--config', configs[i]!], dir)))));
    await Promise.all(relays.map((r) => r.waitFor('waiting in IDLE')));
  });
  after(async () => {
    for (const r of relays) r.kill();
    await sink?.close();
    await dovecot?.stop();
    await cluster?.stop();
  });

  test('each report stored once; both relays show the same numbers; one report pool each, closed at stop', async (t) => {
    const messages = await receiverMessages();
    const c = await imapClient(dovecot);
    try {
      for (const m of messages) await c.append('INBOX', m.message);
      await until('the four reports imported, by one relay or the other', () => imported(relays).size === 4, { timeoutMs: 60_000 });
      await until('the inbox emptied into Processed', async () => ((await c.status('INBOX', { messages: true })) || { messages: -1 }).messages === 0, {
        timeoutMs: 30_000,
      });
    } finally {
      await c.logout();
    }
    assert.equal((await cluster.psql('fleet', 'SELECT count(*) FROM dmarc_reports')).trim(), '4');
    for (const r of relays) assert.doesNotMatch(r.output(), /"status":"refused"|background task dmarc-reports failed/, r.output());
    const takers = relays.map((r) => [...r.output().matchAll(/imported report/g)].length);
    t.diagnostic(`reports imported per relay: ${takers.join(', ')}`);

    const fail = EXPECTED.messages - EXPECTED.dmarcPass;
    for (const r of relays) {
      const metrics = await page(r, '/metrics');
      assert.match(metrics, new RegExp(`dkim_relay_dmarc_reported_messages\\{domain="example.com",result="pass"\\} ${EXPECTED.dmarcPass}\\n`));
      assert.match(metrics, new RegExp(`dkim_relay_dmarc_reported_messages\\{domain="example.com",result="fail"\\} ${fail}\\n`));
      const status = await page(r, '/');
      assert.match(status, new RegExp(`messages reported \\(last \\d+ days, ${EXPECTED.reports} reports\\)</td>\\s*<td class="n">${EXPECTED.messages}<`));
      assert.match(status, new RegExp(`<tr data-figure="relaySignedFailing">\\s*<td>[^<]*</td>\\s*<td class="n">${EXPECTED.relaySignedFailing}<`));
    }
    const status = await dkimRelay(['status', '--json', '--no-dns', '--config', configs[1]!], dirs[1]!);
    assert.ok([0, 1].includes(status.code ?? -1), status.stderr);
    const e = (JSON.parse(status.stdout) as StatusReport).domains.find((x) => x.domain === 'example.com')!.receivers!.evidence!;
    assert.deepEqual(
      [e.reports, e.messages, e.dmarcPass, e.relaySignedFailing.messages, e.notRelaySigned.messages],
      [EXPECTED.reports, EXPECTED.messages, EXPECTED.dmarcPass, EXPECTED.relaySignedFailing, EXPECTED.notRelaySigned],
    );

    // The pools that imported and read the reports stay open between uses: the same backends serve the next look.
    const pools = (await cluster.psql('fleet', REPORT_BACKENDS)).trim().split('\n').filter(Boolean);
    t.diagnostic(`report backends at rest: ${pools.length}`);
    assert.ok(pools.length >= 1 && pools.length <= 8, `report backends: ${pools.join(' ')}`); // two pools of at most two, per relay
    const again = await imapClient(dovecot);
    try {
      await again.append('INBOX', messages[0]!.message);
    } finally {
      await again.logout();
    }
    await until('the report sent again found stored', () => relays.some((r) => /was imported before; nothing changed/.test(r.output())), { timeoutMs: 30_000 });
    for (const r of relays) await page(r, '/metrics');
    const later = (await cluster.psql('fleet', REPORT_BACKENDS)).trim().split('\n').filter(Boolean);
    for (const pid of pools) assert.ok(later.includes(pid), `backend ${pid} was closed between looks: ${later.join(' ')}`);
    assert.equal((await cluster.psql('fleet', 'SELECT count(*) FROM dmarc_reports')).trim(), '4');

    // A relay that stops ends its connections: none of the report backends is left.
    for (const r of relays) r.child.kill('SIGTERM');
    await Promise.all(relays.map((r) => r.exited));
    await until('every report backend gone', async () => (await cluster.psql('fleet', REPORT_BACKENDS)).trim() === '', { timeoutMs: 10_000 });
  });
});

describe('one mailbox, two readers', { skip: missing }, () => {
  let dovecot: Dovecot;
  before(async () => {
    dovecot = await startDovecot();
  });
  after(async () => {
    await dovecot?.stop();
  });

  test('a message the other reader moved away while this one looked is skipped, not refused', async () => {
    const dir = tempDir('dkim-relay-two-readers-');
    const passwordFile = join(dir, 'imap-password');
    writeFileSync(passwordFile, `${dovecot.password}\n`, { mode: 0o600 });
    const settings: ImapSettings = {
      host: '127.0.0.1',
      port: dovecot.port,
      tls: 'none',
      user: dovecot.user,
      passwordFile,
      folder: 'INBOX',
      doneFolder: 'Processed',
      intervalSeconds: 3600,
    };
    const c = await imapClient(dovecot);
    for (const m of (await receiverMessages()).slice(0, 2)) await c.append('INBOX', m.message);
    await c.logout();
    const stored = (): ImportResult => ({ status: 'duplicate', domain: 'example.com', orgName: 'o', reportId: 'r', records: 1, messages: 1 });
    const [first, second] = await Promise.all([MailboxSession.open(settings), MailboxSession.open(settings)]);
    try {
      let otherLooked = false;
      // While the first reader holds its first message, the second takes every message and moves it away.
      const polled = await first.look(1 << 20, async () => {
        if (!otherLooked) {
          otherLooked = true;
          assert.equal((await second.look(1 << 20, async () => stored())).length, 2);
        }
        return stored();
      });
      assert.deepEqual(
        polled.map((p) => p.result.status),
        ['duplicate'],
        'the message moved away under the first reader is not reported as refused',
      );
    } finally {
      first.close();
      second.close();
    }
  });
});
