// The receivers' reports as evidence for DMARC enforcement: `status --json`,
// the running relay's status page and its /metrics show the same numbers as
// `reports --json --days N` for the window reports.windowDays, and a report
// older than the window counts in none of them.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { SqliteKeyStore } from '../../src/keys/store.ts';
import { metrics } from '../../src/observability/metrics.ts';
import type { StatusReport } from '../../src/observability/status-report.ts';
import { configSchema } from '../../src/config/schema.ts';
import { importContext, importReport } from '../../src/reports/import.ts';
import { SqliteReportStore } from '../../src/reports/sqlite-report-store.ts';
import type { DomainSummary } from '../../src/reports/summary.ts';
import { dkimRelay, type Run } from '../cli/support.ts';
import { startTestRelay, type TestRelay } from '../helpers/relay-harness.ts';
import { tempDir } from '../helpers/tmp.ts';
import { get, parseExposition, value } from '../observability/support.ts';
import { BIS, GOOGLE, MICROSOFT, reportXml, YAHOO, type ReportSpec } from './support.ts';

const DAY = 86_400;
/** Ended 19 days ago: inside `reports`' default 30 days, outside the 14-day window. */
const OLD: ReportSpec = { ...GOOGLE, reportId: 'old-1', begin: GOOGLE.begin - 18 * DAY, end: GOOGLE.end - 18 * DAY };
const REPORTS = [GOOGLE, MICROSOFT, YAHOO, BIS, OLD];

function json<T>(run: Run, codes = [0]): T {
  assert.ok(codes.includes(run.code ?? -1), `exit ${run.code}\n${run.stdout}\n${run.stderr}`);
  return JSON.parse(run.stdout) as T;
}

/** What both views must agree on, from `reports --json`. */
function figures(d: DomainSummary) {
  return {
    reports: d.reports,
    messages: d.messages,
    dmarcPass: d.dmarcPass,
    relaySignedFailing: d.relaySignedFailing.messages,
    notRelaySigned: d.notRelaySigned.messages,
    failing: Object.fromEntries(d.sources.filter((s) => s.messages > s.dmarcPass).map((s) => [s.sourceIp, s.messages - s.dmarcPass])),
  };
}

test('status --json and its text give the same numbers as reports --json --days 14, and the verdict', async () => {
  const dir = tempDir('dkim-relay-evidence-');
  const store = SqliteKeyStore.open(join(dir, 'keys'));
  store.generate({ domain: 'example.com', selector: 'relay1', algorithm: 'ed25519', activate: true });
  store.close();
  const config = join(dir, 'dkim-relay.yaml');
  writeFileSync(config, `keys:\n  dir: ${join(dir, 'keys')}\nqueue:\n  dir: ${join(dir, 'spool')}\nmetrics:\n  enabled: false\n`);
  const files = REPORTS.map((r, i) => {
    const file = join(dir, `report-${i}.xml`);
    writeFileSync(file, reportXml(r));
    return file;
  });
  assert.equal((await dkimRelay(['reports', 'import', '--config', config, ...files], dir)).code, 0);

  const window = json<{ domains: DomainSummary[] }>(await dkimRelay(['reports', '--json', '--days', '14', '--config', config], dir)).domains[0]!;
  const wider = json<{ domains: DomainSummary[] }>(await dkimRelay(['reports', '--json', '--config', config], dir)).domains[0]!;
  assert.equal(wider.messages, window.messages + 123, 'the old report counts in 30 days, not in 14');
  assert.equal(window.messages, 227);

  const status = json<StatusReport>(await dkimRelay(['status', '--json', '--no-dns', '--config', config], dir), [0, 1]);
  const r = status.domains.find((d) => d.domain === 'example.com')!.receivers!;
  assert.equal(r.days, 14);
  const e = r.evidence!;
  assert.deepEqual(
    {
      reports: e.reports,
      messages: e.messages,
      dmarcPass: e.dmarcPass,
      relaySignedFailing: e.relaySignedFailing.messages,
      notRelaySigned: e.notRelaySigned.messages,
      failing: Object.fromEntries(e.failingSources.map((s) => [s.sourceIp, s.messages])),
    },
    figures(window),
  );
  assert.deepEqual(e.failingSources, [
    { sourceIp: '203.0.113.5', messages: 7, why: ['DKIM d=thirdparty.example not aligned', 'SPF not aligned'] },
    { sourceIp: '192.0.2.10', messages: 5, why: ['DKIM fail d=example.com s=relay1', 'SPF not aligned'] },
    { sourceIp: '198.51.100.7', messages: 5, why: ['no DKIM signature', 'SPF not aligned'] },
  ]);
  assert.deepEqual(e.relaySignedFailing.breakages, [
    { selector: 'relay1', receiver: 'google.com', messages: 3 },
    { selector: 'relay1', receiver: 'Yahoo', messages: 2 },
  ]);
  assert.equal(r.verdict.state, 'not-yet');

  const text = await dkimRelay(['status', '--no-dns', '--config', config], dir);
  assert.match(
    text.stdout,
    /^ {9}reports: over the last 14 days, 92\.5 % of 227 messages passed; these 3 sources failed: 203\.0\.113\.5 \(7: .*\) — not yet: 5 messages signed by this relay failed DKIM at a receiver \(s=relay1 at google\.com ×3, s=relay1 at Yahoo ×2\): something alters them in transit$/m,
  );
});

test('status and reports only read the report tables: a key store without them is left without them', async () => {
  const dir = tempDir('dkim-relay-evidence-');
  const store = SqliteKeyStore.open(join(dir, 'keys'));
  store.generate({ domain: 'example.com', selector: 'relay1', algorithm: 'ed25519', activate: true });
  const dbFile = store.dbFile;
  store.close();
  const config = join(dir, 'dkim-relay.yaml');
  writeFileSync(config, `keys:\n  dir: ${join(dir, 'keys')}\nqueue:\n  dir: ${join(dir, 'spool')}\nmetrics:\n  enabled: false\n`);
  const status = json<StatusReport>(await dkimRelay(['status', '--json', '--no-dns', '--config', config], dir), [0, 1]);
  assert.equal(status.domains.find((d) => d.domain === 'example.com')!.receivers!.evidence, null);
  assert.deepEqual(json<{ domains: DomainSummary[] }>(await dkimRelay(['reports', '--json', '--config', config], dir)).domains, []);
  const db = new Database(dbFile, { readonly: true });
  try {
    assert.deepEqual(db.prepare(`SELECT name FROM sqlite_master WHERE name LIKE 'dmarc%' OR name = 'report_schema'`).all(), []);
  } finally {
    db.close();
  }
});

describe('a running relay shows the reports on its page and in /metrics', () => {
  let relay: TestRelay;
  let port = 0;
  before(async () => {
    relay = await startTestRelay({}, (store) => {
      store.generate({ domain: 'example.com', selector: 'relay1', algorithm: 'ed25519', activate: true });
    });
    port = relay.relay.ports.metrics!;
  });
  after(async () => {
    await relay?.close();
  });

  test('before any report: no gauge for the domain, and the page says how to get reports', async () => {
    const samples = await parseExposition((await get(port, '/metrics')).body);
    assert.equal(value(samples, 'dkim_relay_dmarc_reported_messages', { domain: 'example.com', result: 'pass' }), undefined);
    const page = (await get(port, '/')).body;
    assert.match(
      page,
      /<p class="receivers-verdict" data-state="no-reports">.*no DMARC aggregate reports for the last 14 days: publish rua=mailto:ADDRESS in _dmarc\.example\.com/s,
    );
  });

  test('after an import: the page and the gauges show what reports --json --days 14 shows', async () => {
    const reports = SqliteReportStore.open(relay.store.dbFile);
    try {
      const ctx = importContext(reports, relay.store, configSchema.parse({}).reports);
      for (const r of REPORTS) assert.equal((await importReport(Buffer.from(reportXml(r)), ctx)).status, 'imported');
    } finally {
      reports.close();
    }
    metrics.receiversChanged(); // as the mailbox poller does after importing

    const config = join(relay.dir, 'cli.yaml');
    writeFileSync(config, `keys:\n  dir: ${join(relay.dir, 'keys')}\nqueue:\n  dir: ${join(relay.dir, 'spool')}\nmetrics:\n  enabled: false\n`);
    const window = figures(
      json<{ domains: DomainSummary[] }>(await dkimRelay(['reports', '--json', '--days', '14', '--config', config], relay.dir)).domains[0]!,
    );

    const samples = await parseExposition((await get(port, '/metrics')).body);
    assert.equal(value(samples, 'dkim_relay_dmarc_reported_messages', { domain: 'example.com', result: 'pass' }), window.dmarcPass);
    assert.equal(value(samples, 'dkim_relay_dmarc_reported_messages', { domain: 'example.com', result: 'fail' }), window.messages - window.dmarcPass);
    assert.equal(value(samples, 'dkim_relay_dmarc_relay_signed_dkim_fail_messages', { domain: 'example.com' }), window.relaySignedFailing);

    const page = (await get(port, '/')).body;
    const figure = (name: string) => page.match(new RegExp(`<tr data-figure="${name}">\\s*<td>[^<]*</td>\\s*<td class="n">([\\d,]+)`))?.[1]?.replace(/,/g, '');
    assert.deepEqual(
      {
        messages: Number(figure('messages')),
        dmarcPass: Number(figure('dmarcPass')),
        relaySignedFailing: Number(figure('relaySignedFailing')),
        notRelaySigned: Number(figure('notRelaySigned')),
      },
      { messages: window.messages, dmarcPass: window.dmarcPass, relaySignedFailing: window.relaySignedFailing, notRelaySigned: window.notRelaySigned },
    );
    const failing = Object.fromEntries(
      [...page.matchAll(/<tr data-source="([^"]+)">\s*<td><code>[^<]*<\/code><\/td>\s*<td class="n">([\d,]+)<\/td>/g)].map((m) => [m[1], Number(m[2])]),
    );
    assert.deepEqual(failing, window.failing);
    assert.match(page, /<tr data-selector="relay1" data-receiver="google\.com">\s*<td>relay1<\/td>\s*<td>google\.com<\/td>\s*<td class="n">3<\/td>/);
    assert.match(page, /data-state="not-yet"><span class="badge warn">not yet<\/span> over the last 14 days, 92\.5 % of 227 messages passed/);
  });
});
