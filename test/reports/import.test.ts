// Reports in, stored once, pruned, and summed up per domain.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { importReport, type ImportContext } from '../../src/reports/import.ts';
import { SqliteReportStore } from '../../src/reports/sqlite-report-store.ts';
import { receiverEvidence } from '../../src/reports/evidence.ts';
import { relayKeysOf, summarise } from '../../src/reports/summary.ts';
import { dmarcVerdict } from '../../src/observability/receiver-evidence.ts';
import { tempDir } from '../helpers/tmp.ts';
import { EXPECTED, FOREIGN, GOOGLE, gzip, receiverMessages, reportMessage, reportXml } from './support.ts';

const RELAY_KEYS = relayKeysOf([{ domain: 'example.com', selector: 'relay1', client: null }]);

function context(file: string, now?: () => number, keepDays = 180): Omit<ImportContext, 'reports'> & { reports: SqliteReportStore } {
  return {
    reports: SqliteReportStore.open(file),
    maxBytes: 20 * 1024 * 1024,
    keepDays,
    signingDomains: () => new Set(['example.com']),
    ...(now ? { now } : {}),
  };
}

function summary(reports: SqliteReportStore) {
  return summarise(reports.records(0), reports.reportCounts(0), RELAY_KEYS);
}

test("the four receivers' messages are imported, and the summary adds them up exactly; a second import changes nothing", async () => {
  const file = join(tempDir(), 'keys.db');
  const ctx = context(file);
  const messages = await receiverMessages();
  for (const { name, message } of messages) {
    const r = await importReport(message, ctx);
    assert.equal(r.status, 'imported', `${name}: ${JSON.stringify(r)}`);
  }
  const [domain] = summary(ctx.reports);
  assert.equal(domain!.domain, 'example.com');
  assert.equal(domain!.reports, EXPECTED.reports);
  assert.equal(domain!.messages, EXPECTED.messages);
  assert.equal(domain!.dmarcPass, EXPECTED.dmarcPass);
  assert.equal(domain!.passShare, EXPECTED.dmarcPass / EXPECTED.messages);
  assert.equal(domain!.relaySignedFailing.messages, EXPECTED.relaySignedFailing);
  assert.equal(domain!.notRelaySigned.messages, EXPECTED.notRelaySigned);
  // The relay's own source: 100+3 (Google) + 50 (Microsoft) + 30+2 (Yahoo), selector relay1.
  const relay = domain!.sources.find((s) => s.sourceIp === '192.0.2.10')!;
  assert.deepEqual(relay, {
    sourceIp: '192.0.2.10',
    messages: 185,
    dmarcPass: 180,
    dkimAligned: 180,
    signatures: [
      { domain: 'example.com', selector: 'relay1', result: 'pass', messages: 180 },
      { domain: 'example.com', selector: 'relay1', result: 'fail', messages: 5 },
    ],
  });
  assert.deepEqual(
    domain!.relaySignedFailing.sources.map((s) => [s.sourceIp, s.messages]),
    [['192.0.2.10', 5]],
  );
  assert.deepEqual(
    domain!.notRelaySigned.sources.map((s) => [s.sourceIp, s.messages, s.dmarcPass]),
    [
      ['198.51.100.7', 25, 20],
      ['203.0.113.5', 7, 0],
    ],
  );
  // The DMARCbis report's source signed by the relay and by an ESP.
  assert.deepEqual(
    domain!.sources.find((s) => s.sourceIp === '2001:db8::25')!.signatures.map((s) => `${s.domain}/${s.selector}`),
    ['esp.example/k1', 'example.com/relay1'],
  );

  const before = JSON.stringify(summary(ctx.reports));
  for (const { message } of messages) assert.equal((await importReport(message, ctx)).status, 'duplicate');
  assert.equal(JSON.stringify(summary(ctx.reports)), before);
  ctx.reports.close();
  const db = new Database(file, { readonly: true });
  assert.deepEqual(db.prepare('SELECT (SELECT COUNT(*) FROM dmarc_reports) AS reports, (SELECT COUNT(*) FROM dmarc_records) AS records').get(), {
    reports: 4,
    records: 9,
  });
  db.close();
});

test('a report for a domain the relay does not sign is ignored with its reason and not stored', async () => {
  const ctx = context(join(tempDir(), 'keys.db'));
  const r = await importReport(Buffer.from(reportXml(FOREIGN)), ctx);
  assert.deepEqual(r, {
    status: 'ignored',
    domain: 'other.example',
    orgName: 'google.com',
    reportId: '999',
    reason: 'the relay holds no key for other.example',
  });
  assert.deepEqual(summary(ctx.reports), []);
  ctx.reports.close();
});

test('a report about the organizational domain above a signing domain is kept', async () => {
  const ctx = { ...context(join(tempDir(), 'keys.db')), signingDomains: () => new Set(['mail.example.com']) };
  assert.equal((await importReport(gzip(reportXml(GOOGLE)), ctx)).status, 'imported');
  ctx.reports.close();
});

test('reports older than keepDays are removed at the next import', async () => {
  const day = 86_400_000;
  let now = (GOOGLE.end + 1) * 1000;
  const ctx = context(join(tempDir(), 'keys.db'), () => now, 30);
  assert.equal((await importReport(Buffer.from(reportXml(GOOGLE)), ctx)).status, 'imported');
  now += 29 * day;
  assert.equal((await importReport(Buffer.from(reportXml({ ...GOOGLE, reportId: 'second', end: GOOGLE.end + 2 * 86_400 })), ctx)).status, 'imported');
  assert.equal(ctx.reports.reportCounts(0).get('example.com'), 2);
  now += 2 * day; // the first report's period ended 31 days ago, the second's 29
  assert.equal((await importReport(Buffer.from(reportXml({ ...GOOGLE, reportId: 'third', end: GOOGLE.end + 30 * 86_400 })), ctx)).status, 'imported');
  assert.deepEqual([...new Set(ctx.reports.records(0).map((r) => r.reportId))], ['second', 'third']);
  ctx.reports.close();
});

test('refused input never throws out of the import', async () => {
  const ctx = context(join(tempDir(), 'keys.db'));
  for (const data of [Buffer.alloc(0), Buffer.from('<feedback/>'), Buffer.from('Subject: x\r\n\r\nno attachment\r\n'), Buffer.from([0x1f, 0x8b])]) {
    const r = await importReport(data, ctx);
    assert.equal(r.status, 'refused', JSON.stringify(r));
  }
  ctx.reports.close();
});

test("a relay signature failing at a receiver is attributed to the chain whose selector it was: a client's own, or the domain's", async () => {
  const ctx = context(join(tempDir(), 'keys.db'));
  const xml = reportXml({
    ...GOOGLE,
    reportId: 'chains-1',
    rows: [
      { ip: '192.0.2.20', count: 4, dkim: 'fail', spf: 'fail', signatures: [{ d: 'example.com', s: 'scanner-202612a', result: 'fail' }] },
      { ip: '192.0.2.20', count: 96, dkim: 'pass', spf: 'pass', signatures: [{ d: 'example.com', s: 'scanner-202612a', result: 'pass' }] },
      { ip: '192.0.2.10', count: 2, dkim: 'fail', spf: 'fail', signatures: [{ d: 'example.com', s: 'relay1', result: 'fail' }] },
    ],
  });
  const message = await reportMessage(GOOGLE.email, 'Report domain: example.com', {
    filename: 'google.xml.gz',
    content: gzip(xml),
    contentType: 'application/gzip',
  });
  assert.equal((await importReport(message, ctx)).status, 'imported');
  const keys = relayKeysOf([
    { domain: 'example.com', selector: 'relay1', client: null },
    { domain: 'example.com', selector: 'scanner-202612a', client: 'scanner' },
  ]);
  const [domain] = summarise(ctx.reports.records(0), ctx.reports.reportCounts(0), keys);
  assert.deepEqual(
    domain!.relaySignedFailing.sources.flatMap((s) => s.signatures.filter((g) => g.result === 'fail').map((g) => [g.selector, g.client ?? null])),
    [
      ['scanner-202612a', 'scanner'],
      ['relay1', null],
    ],
  );
  const evidence = receiverEvidence(ctx.reports.records(0), ctx.reports.reportCounts(0), keys, 14).get('example.com')!;
  assert.deepEqual(evidence.relaySignedFailing.breakages, [
    { selector: 'scanner-202612a', client: 'scanner', receiver: 'google.com', messages: 4 },
    { selector: 'relay1', receiver: 'google.com', messages: 2 },
  ]);
  const verdict = dmarcVerdict('example.com', 14, evidence);
  assert.match(verdict.line, /\(client scanner's s=scanner-202612a at google\.com ×4, s=relay1 at google\.com ×2\)/);
  ctx.reports.close();
});
