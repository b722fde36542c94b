// The real program: `serve` polls a private dovecot for the reports the large
// receivers send, `reports --json` shows exactly what they say, a second poll
// changes nothing, and processed messages are moved; `reports import` takes
// report files and saved messages.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SqliteKeyStore } from '../../src/keys/store.ts';
import type { DomainSummary } from '../../src/reports/summary.ts';
import { dkimRelay, serve, type Run } from '../cli/support.ts';
import { dovecotMissing, imapClient, startDovecot, type Dovecot } from '../helpers/dovecot.ts';
import { tempDir } from '../helpers/tmp.ts';
import { get, parseExposition, value } from '../observability/support.ts';
import { BIS, EXPECTED, FOREIGN, GOOGLE, gzip, MICROSOFT, receiverMessages, reportMessage, reportXml, YAHOO, zipFile } from './support.ts';

const missing = dovecotMissing();
if (missing && process.env.CI) throw new Error(`IMAP tests need dovecot: ${missing}`);
if (missing) console.log(`skipping the relay's IMAP test: ${missing}`);

/** A relay directory whose key store holds example.com's key with selector relay1. */
function relayDir(extra = '', metrics = 'metrics:\n  enabled: false\n'): { dir: string; config: string } {
  const dir = tempDir('dkim-relay-reports-');
  const store = SqliteKeyStore.open(join(dir, 'keys'));
  store.generate({ domain: 'example.com', selector: 'relay1', algorithm: 'ed25519', activate: true });
  store.close();
  const config = join(dir, 'dkim-relay.yaml');
  writeFileSync(config, `keys:\n  dir: ${join(dir, 'keys')}\nlisten:\n  host: 127.0.0.1\n  port: 0\n${metrics}log:\n  format: json\n${extra}`);
  return { dir, config };
}

function summaryOf(run: Run): { days: number; domains: DomainSummary[] } {
  assert.equal(run.code, 0, `exit ${run.code}\n${run.stdout}\n${run.stderr}`);
  return JSON.parse(run.stdout) as { days: number; domains: DomainSummary[] };
}

function assertExpected(domains: DomainSummary[]): void {
  assert.equal(domains.length, 1);
  const [d] = domains;
  assert.deepEqual(
    {
      domain: d!.domain,
      reports: d!.reports,
      messages: d!.messages,
      dmarcPass: d!.dmarcPass,
      relaySignedFailing: d!.relaySignedFailing.messages,
      notRelaySigned: d!.notRelaySigned.messages,
    },
    { domain: 'example.com', ...EXPECTED },
  );
}

/** The subjects in a folder. */
async function subjects(d: Dovecot, path: string): Promise<string[]> {
  const c = await imapClient(d);
  try {
    const lock = await c.getMailboxLock(path);
    try {
      return (await c.fetchAll('1:*', { envelope: true }).catch(() => [])).map((m) => m.envelope?.subject ?? '');
    } finally {
      lock.release();
    }
  } finally {
    await c.logout();
  }
}

describe('serve reads the report mailbox', { skip: missing }, () => {
  let dovecot: Dovecot;
  before(async () => {
    dovecot = await startDovecot();
  });
  after(async () => {
    await dovecot?.stop();
  });

  test("the receivers' reports are imported, counted exactly, kept once, and moved to the done folder", async () => {
    const messages = await receiverMessages();
    const foreign = await reportMessage('noreply-dmarc-support@google.com', 'Report domain: other.example', {
      filename: 'other.xml.gz',
      content: gzip(reportXml(FOREIGN)),
      contentType: 'application/gzip',
    });
    const c = await imapClient(dovecot);
    for (const { message } of messages) await c.append('INBOX', message);
    await c.append('INBOX', foreign);

    const password = join(tempDir(), 'imap-password');
    writeFileSync(password, `${dovecot.password}\n`, { mode: 0o600 });
    const { dir, config } = relayDir(
      `reports:\n  imap:\n    host: 127.0.0.1\n    port: ${dovecot.port}\n    tls: none\n    user: ${dovecot.user}\n    passwordFile: ${password}\n    doneFolder: Processed\n    intervalSeconds: 1\n`,
      'metrics:\n  listen: 127.0.0.1:0\n',
    );
    const relay = await serve(['--config', config], dir);
    try {
      await relay.waitFor('"DMARC report mailbox polled"');
      const polled = relay
        .output()
        .split('\n')
        .filter((l) => l.includes('"DMARC report mailbox polled"'));
      assert.deepEqual(JSON.parse(polled[0]!), { ...JSON.parse(polled[0]!), messages: 5, imported: 4, duplicate: 0, ignored: 1, refused: 0 });
      assert.equal(
        relay
          .output()
          .split('\n')
          .filter((l) => l.includes('ignored: the relay holds no key for other.example')).length,
        1,
      );
      assert.deepEqual(await subjects(dovecot, 'INBOX'), []);
      assert.equal((await subjects(dovecot, 'Processed')).length, 5);

      const first = summaryOf(await dkimRelay(['reports', '--json', '--config', config], dir));
      assertExpected(first.domains);

      // The same Google report delivered again: read at the next poll, and nothing changes.
      const since = relay.output().length;
      await c.append('INBOX', messages[0]!.message);
      await relay.waitFor('"duplicate":1', 20_000, since);
      assert.deepEqual(summaryOf(await dkimRelay(['reports', '--json', '--config', config], dir)), first);
      assert.equal((await subjects(dovecot, 'Processed')).length, 6);

      const text = await dkimRelay(['reports', '--config', config, '--domain', 'example.com'], dir);
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, /^example\.com: 227 messages in 4 report\(s\) of the last 30 days; 210 \(92\.5%\) passed DMARC$/m);
      assert.match(
        text.stdout,
        /broken in transit\): 5 messages\n {4}192\.0\.2\.10 {2}5 messages, 0 passed DMARC, 0 DKIM aligned; d=example\.com s=relay1 fail ×5$/m,
      );
      assert.match(text.stdout, /sources still to bring in\): 32 messages\n {4}198\.51\.100\.7 {2}25 messages, 20 passed DMARC/m);

      // The gauges, read once now, are read again as soon as the poller imports a new report (not a minute later).
      const metricsPort = (
        JSON.parse(
          relay
            .output()
            .split('\n')
            .find((l) => l.includes('"relay listening"'))!,
        ) as { metrics: number }
      ).metrics;
      const reported = async (result: string) =>
        value(await parseExposition((await get(metricsPort, '/metrics')).body), 'dkim_relay_dmarc_reported_messages', { domain: 'example.com', result });
      assert.equal(await reported('pass'), EXPECTED.dmarcPass);
      const later = relay.output().length;
      const next = { ...YAHOO, reportId: 'yahoo-next' };
      await c.append(
        'INBOX',
        await reportMessage(YAHOO.email, 'Report Domain: example.com', { filename: 'next.xml', content: reportXml(next), contentType: 'text/xml' }),
      );
      await relay.waitFor('"imported":1', 20_000, later);
      assert.equal(await reported('pass'), EXPECTED.dmarcPass + 30);
      assert.equal(await reported('fail'), EXPECTED.messages - EXPECTED.dmarcPass + 2);
    } finally {
      await c.logout();
      relay.child.kill('SIGTERM');
      await relay.exited;
    }
  });
});

test('reports import: files and saved messages, each with one line; a refused one makes the exit status 1', async () => {
  const { dir, config } = relayDir();
  const files: Record<string, Buffer | string> = {
    'google.xml.gz': gzip(reportXml(GOOGLE)),
    'microsoft.eml': await reportMessage('dmarcreport@microsoft.com', 'Report', {
      filename: 'ms.xml.gz',
      content: gzip(reportXml(MICROSOFT)),
      contentType: 'application/gzip',
    }),
    'yahoo.zip': zipFile([{ name: 'yahoo.xml', data: Buffer.from(reportXml(YAHOO)) }]),
    'bis.xml': reportXml(BIS),
    'other.xml': reportXml(FOREIGN),
    'logo.png': Buffer.from('89504e470d0a1a0a', 'hex'),
  };
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  const run = await dkimRelay(['reports', 'import', '--config', config, ...Object.keys(files)], dir);
  assert.equal(run.code, 1, run.stderr);
  assert.deepEqual(run.stdout.trim().split('\n'), [
    `google.xml.gz: imported report ${GOOGLE.reportId} from google.com for example.com: 3 records, 123 messages`,
    `microsoft.eml: imported report ${MICROSOFT.reportId} from Enterprise Outlook for example.com: 2 records, 57 messages`,
    `yahoo.zip: imported report ${YAHOO.reportId} from Yahoo for example.com: 2 records, 32 messages`,
    `bis.xml: imported report ${BIS.reportId} from mail.example.net for example.com: 2 records, 15 messages`,
    'other.xml: report 999 from google.com ignored: the relay holds no key for other.example',
    'logo.png: refused: neither XML, gzip, zip nor a mail message',
  ]);
  assert.equal(run.stderr, 'dkim-relay: 1 of 6 file(s) refused (see above)\n');
  assertExpected(summaryOf(await dkimRelay(['reports', '--json', '--config', config], dir)).domains);

  const again = await dkimRelay(['reports', 'import', '--json', '--config', config, 'google.xml.gz'], dir);
  assert.equal(again.code, 0, again.stderr);
  assert.equal((JSON.parse(again.stdout) as { status: string }[])[0]!.status, 'duplicate');

  const none = await dkimRelay(['reports', '--config', config, '--domain', 'other.example'], dir);
  assert.equal(none.stdout.trim(), 'no DMARC aggregate reports for the last 30 days (add some with: dkim-relay reports import FILE..., or set reports.imap)');
  const usage = await dkimRelay(['reports', '--config', config, '--days', '0'], dir);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /--days must be a whole number above 0/);
});

test('serve refuses to start while the IMAP password file is readable by others, with one line and exit 2', async () => {
  const password = join(tempDir(), 'imap-password');
  writeFileSync(password, 'secret-imap-password\n', { mode: 0o644 });
  const { dir, config } = relayDir(`reports:\n  imap:\n    host: imap.example.net\n    user: reports\n    passwordFile: ${password}\n`);
  const run = await dkimRelay(['serve', '--config', config], dir);
  assert.equal(run.code, 2, run.stdout + run.stderr);
  assert.equal(
    run.stderr.trim().split('\n').at(-1),
    `dkim-relay: ${config}: reports.imap.passwordFile: the IMAP password file ${password} is readable by others (mode 0644) — run: chmod 600 ${password} — and change the IMAP password if others could read it`,
  );
  assert.doesNotMatch(run.stdout + run.stderr, /secret-imap-password/);
  assert.doesNotMatch(run.stdout, /relay listening/);
});
