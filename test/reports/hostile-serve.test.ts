// Hostile reports arriving in the mailbox of a running relay (the real
// `serve`, waiting in IDLE): a 1 GiB gzip bomb, a 1 GiB zip bomb, billion
// laughs, a 100 MB XML message, contradicted and missing content types, and a
// report about a domain the relay does not sign. Each is refused or ignored
// with one log line; the relay's peak memory while it reads them stays
// bounded (measured from /proc: VmHWM reset before, read after); and it
// relays mail meanwhile, signed so that dkimpy verifies it.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SqliteKeyStore } from '../../src/keys/store.ts';
import { serve, type Served } from '../cli/support.ts';
import { dovecotMissing, imapClient, startDovecot, type Dovecot } from '../helpers/dovecot.ts';
import { verifyWithDkimpy } from '../helpers/independent-verify.ts';
import { send, startSink, type Sink } from '../helpers/relay-harness.ts';
import { tempDir } from '../helpers/tmp.ts';
import { deflateBomb, FOREIGN, GiB, GOOGLE, gzip, gzipBomb, reportMessage, reportXml, zipFile } from './support.ts';

const missing = dovecotMissing();
if (missing && process.env.CI) throw new Error(`IMAP tests need dovecot: ${missing}`);

const MiB = 1024 * 1024;
/** reports.maxBytes in this test's configuration. */
const LIMIT = 20 * MiB;

/** A kilobyte of billion-laughs entities: expanded, 10^9 "lol"s (3 GB). */
function billionLaughs(): string {
  const entities = ['<!ENTITY lol0 "lol">', ...Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i};`.repeat(10)}">`)].join('');
  return reportXml({ ...GOOGLE, reportId: 'laughs' })
    .replace('<feedback>', `<!DOCTYPE feedback [${entities}]><feedback>`)
    .replace('<org_name>google.com</org_name>', '<org_name>&lol9;</org_name>');
}

/** A message whose text is a 100 MB XML report: records repeated. */
function hugeXmlMessage(): Buffer {
  const head = Buffer.from(
    'From: noreply@example.net\r\nSubject: Report domain: example.com\r\nContent-Type: text/xml\r\n\r\n<?xml version="1.0"?>\r\n<feedback>\r\n',
  );
  const record = Buffer.from('<record><row><source_ip>192.0.2.1</source_ip><count>1</count></row></record>\r\n');
  const body = Buffer.alloc(100 * 1000 * 1000 - head.length, record.toString());
  return Buffer.concat([head, body]);
}

function proc(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const kB = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'))?.[1];
  return Number(kB) * 1024;
}

describe('hostile reports in the mailbox of a running relay', { skip: missing }, () => {
  let dovecot: Dovecot;
  let sink: Sink;
  let relay: Served | undefined;
  before(async () => {
    dovecot = await startDovecot();
    sink = await startSink();
  });
  after(async () => {
    relay?.kill();
    await sink?.close();
    await dovecot?.stop();
  });

  test('each is refused or ignored with one log line, memory stays bounded, and mail is relayed meanwhile', async () => {
    const dir = tempDir('dkim-relay-hostile-');
    const store = SqliteKeyStore.open(join(dir, 'keys'));
    store.generate({ domain: 'example.com', selector: 'relay1', algorithm: 'ed25519', activate: true });
    const records = { 'relay1._domainkey.example.com': store.publishedValue('relay1._domainkey.example.com')! };
    store.close();
    const password = join(dir, 'imap-password');
    writeFileSync(password, `${dovecot.password}\n`, { mode: 0o600 });
    const config = join(dir, 'dkim-relay.yaml');
    writeFileSync(
      config,
      `keys: {dir: ${join(dir, 'keys')}}\nqueue: {dir: ${join(dir, 'queue')}}\nlisten: {host: 127.0.0.1, port: 0}\nmetrics: {enabled: false}\nlog: {format: json}\n` +
        `rotation: {check: "off"}\ndelivery: {mode: sync, upstream: {type: smtp, host: 127.0.0.1, port: ${sink.port}}}\n` +
        `reports: {maxBytes: ${LIMIT}, imap: {host: 127.0.0.1, port: ${dovecot.port}, tls: none, user: ${dovecot.user}, passwordFile: ${password}, intervalSeconds: 3600}}\n`,
    );
    relay = await serve(['--config', config], dir);
    await relay.waitFor('waiting in IDLE');

    const hostile: { name: string; message: Buffer; line: RegExp }[] = [
      {
        name: 'gzip bomb',
        message: await reportMessage('a@example.net', 'gzip bomb', { filename: 'r.xml.gz', content: gzipBomb(), contentType: 'application/gzip' }),
        line: /refused: the gzip file expands past 20971520 octets/,
      },
      {
        name: 'zip bomb',
        message: await reportMessage('a@example.net', 'zip bomb', {
          filename: 'r.zip',
          content: zipFile([{ name: 'report.xml', data: Buffer.alloc(0), deflated: deflateBomb(), declaredSize: GiB }]),
          contentType: 'application/zip',
        }),
        line: /refused: the zip member report\.xml expands past 20971520 octets/,
      },
      {
        name: 'billion laughs',
        message: await reportMessage('a@example.net', 'laughs', { filename: 'r.xml', content: billionLaughs(), contentType: 'text/xml' }),
        line: /refused: the XML declares a DOCTYPE or entities/,
      },
      { name: '100 MB XML', message: hugeXmlMessage(), line: /refused: message of \d+ octets, more than 20971520 \(reports\.maxBytes\); not fetched/ },
      {
        name: 'declared zip, is gzip',
        message: await reportMessage('a@example.net', 'wrong type', { filename: 'r.zip', content: gzip(reportXml(GOOGLE)), contentType: 'application/zip' }),
        line: /refused: declared application\/zip but the content is gzip/,
      },
      {
        name: 'no report attached',
        message: await reportMessage('a@example.net', 'picture', {
          filename: 'logo.png',
          content: Buffer.from('89504e470d0a1a0a', 'hex'),
          contentType: 'image/png',
        }),
        line: /refused: the message has no report attachment \(found text\/plain, image\/png/,
      },
      {
        name: 'a domain not signed here',
        message: await reportMessage('a@example.net', 'other', { filename: 'o.xml', content: reportXml(FOREIGN), contentType: 'text/xml' }),
        line: /report 999 from google\.com ignored: the relay holds no key for other\.example/,
      },
    ];

    // The peak resident memory is counted from here (Linux: 5 > clear_refs resets VmHWM).
    const pid = relay.child.pid!;
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    const rssBefore = proc(pid, 'VmRSS');
    const since = relay.output().length;
    const c = await imapClient(dovecot);
    const appended = (async () => {
      for (const h of hostile) await c.append('INBOX', h.message);
      await c.logout();
    })();

    // Mail goes on being relayed while the reports are read: one message after another until every report had its line.
    const read = () =>
      relay!
        .output()
        .slice(since)
        .split('\n')
        .filter((l) => l.includes('"DMARC report IMAP INBOX message'));
    const sent: number[] = [];
    const deadline = Date.now() + 120_000;
    for (let i = 0; i < 2000 && read().length < hostile.length && Date.now() < deadline; i++) {
      const result = await send({
        port: relay.port(),
        from: 'app@example.com',
        to: ['someone@example.net'],
        raw: `From: app@example.com\r\nTo: someone@example.net\r\nSubject: meanwhile ${i}\r\n\r\nsent while hostile reports are read\r\n`,
      });
      assert.ok(result.ok, `message ${i}: ${result.response}`);
      sent.push(i);
    }
    await appended;
    const lines = read();
    assert.equal(lines.length, hostile.length, lines.join('\n'));
    for (const h of hostile) assert.equal(lines.filter((l) => h.line.test(l)).length, 1, `${h.name}: ${lines.join('\n')}`);

    const peak = proc(pid, 'VmHWM');
    const grew = peak - rssBefore;
    console.log(
      `serve: RSS ${(rssBefore / MiB).toFixed(0)} MiB before; peak ${(peak / MiB).toFixed(0)} MiB while reading the ${hostile.length} reports ` +
        `(+${(grew / MiB).toFixed(0)} MiB, reports.maxBytes ${LIMIT / MiB} MiB); ${sent.length} messages relayed meanwhile`,
    );
    assert.ok(grew < 4 * LIMIT, `peak RSS grew by ${(grew / MiB).toFixed(0)} MiB`);

    // Mail sent meanwhile arrived signed; dkimpy verifies the first and the last.
    assert.ok(sent.length >= 1);
    assert.equal(sink.received.length, sent.length);
    for (const m of [sink.received[0]!, sink.received.at(-1)!]) assert.deepEqual(await verifyWithDkimpy(m.raw, records), [true]);
    assert.equal(relay.child.exitCode, null, 'the relay still runs');
  });
});
