// Hostile input is refused with a reason and bounded memory: gzip and zip
// bombs stop at reports.maxBytes as they inflate, whatever the archive
// declares; a huge file is refused by its size before it is read; a declared
// type the content contradicts, or no report at all, is refused.
import assert from 'node:assert/strict';
import { closeSync, openSync, ftruncateSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { unpackReport } from '../../src/reports/unpack.ts';
import { importFile, type ImportContext } from '../../src/reports/import.ts';
import { SqliteReportStore } from '../../src/reports/sqlite-report-store.ts';
import { tempDir } from '../helpers/tmp.ts';
import { deflateBomb, GiB, GOOGLE, gzip, gzipBomb, reportMessage, reportXml, zipFile } from './support.ts';

const MiB = 1024 * 1024;
const LIMIT = 20 * MiB;

/** RSS before, and the most it rose to while `work` ran (sampled as chunks arrive, and at the peak counter). */
async function measured<T>(work: () => Promise<T>): Promise<{ result: T; grewBy: number }> {
  globalThis.gc?.();
  const before = process.memoryUsage().rss;
  let peak = before;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
  try {
    const result = await work();
    peak = Math.max(peak, process.memoryUsage().rss);
    return { result, grewBy: peak - before };
  } finally {
    clearInterval(timer);
  }
}

test('a gzip bomb (1 GiB inflated) is refused after at most the limit, in bounded memory', async () => {
  const bomb = gzipBomb();
  assert.ok(bomb.length < LIMIT, `the bomb itself is small (${bomb.length} octets)`);
  const { result, grewBy } = await measured(() => unpackReport(bomb, LIMIT));
  assert.equal(result.ok, false);
  assert.match(result.ok ? '' : result.reason, /gzip file expands past 20971520 octets/);
  console.log(`gzip bomb: ${bomb.length} octets compressed, 1 GiB inflated; RSS grew by ${(grewBy / MiB).toFixed(1)} MiB`);
  assert.ok(grewBy < 4 * LIMIT, `RSS grew by ${grewBy}`);
});

test('a zip bomb is refused by what it inflates to, whether its header is honest or lies', async () => {
  const deflated = deflateBomb();
  for (const declaredSize of [GiB, 1000]) {
    const zip = zipFile([{ name: 'report.xml', data: Buffer.alloc(0), deflated, declaredSize }]);
    const { result, grewBy } = await measured(() => unpackReport(zip, LIMIT));
    assert.equal(result.ok, false);
    // Honest: our count stops it at the limit. Lying: yauzl stops it when it passes the declared size.
    assert.match(
      result.ok ? '' : result.reason,
      declaredSize === GiB ? /zip member report\.xml expands past 20971520 octets/ : /zip member report\.xml.*too many bytes/,
    );
    console.log(`zip bomb declaring ${declaredSize} octets: ${zip.length} octets compressed; RSS grew by ${(grewBy / MiB).toFixed(1)} MiB`);
    assert.ok(grewBy < 4 * LIMIT, `RSS grew by ${grewBy}`);
  }
});

test('a gzip bomb inside a mail message is refused the same way', async () => {
  const message = await reportMessage('noreply@example.net', 'Report', { filename: 'bomb.xml.gz', content: gzipBomb(), contentType: 'application/gzip' });
  const result = await unpackReport(message, LIMIT);
  assert.equal(result.ok, false);
  assert.match(result.ok ? '' : result.reason, /expands past/);
});

test('a 100 MB XML file is refused by its size before it is read', async () => {
  const dir = tempDir();
  const file = join(dir, 'huge.xml');
  const fd = openSync(file, 'w');
  writeSync(fd, '<?xml version="1.0"?><feedback>');
  ftruncateSync(fd, 100 * 1000 * 1000);
  closeSync(fd);
  const reports = SqliteReportStore.open(join(dir, 'keys.db'));
  const ctx: ImportContext = { reports, maxBytes: LIMIT, keepDays: 180, signingDomains: () => new Set(['example.com']) };
  const { result, grewBy } = await measured(() => importFile(file, ctx));
  reports.close();
  assert.deepEqual(result, { status: 'refused', reason: '100000000 octets, more than 20971520 (reports.maxBytes); refused before reading' });
  assert.ok(grewBy < 50 * MiB, `RSS grew by ${grewBy}`);
  // The same octets handed over in memory (an IMAP fetch) are refused before parsing.
  const inMemory = await unpackReport(Buffer.alloc(LIMIT + 1, 0x20), LIMIT);
  assert.match(inMemory.ok ? '' : inMemory.reason, /refused before parsing/);
});

test('content that is not what it is declared to be, or no report at all, is refused with its reason', async () => {
  const xml = reportXml(GOOGLE);
  const cases: [Buffer, RegExp][] = [
    [
      await reportMessage('a@example.net', 'Report', { filename: 'report.xml.gz', content: xml, contentType: 'application/gzip' }),
      /declared application\/gzip but the content is xml/,
    ],
    [
      await reportMessage('a@example.net', 'Report', { filename: 'report.zip', content: gzip(xml), contentType: 'application/zip' }),
      /declared application\/zip but the content is gzip/,
    ],
    [
      await reportMessage('a@example.net', 'Picture', { filename: 'logo.png', content: Buffer.from('89504e470d0a1a0a', 'hex'), contentType: 'image/png' }),
      /no report attachment \(found text\/plain, image\/png/,
    ],
    [Buffer.from('\x89PNG\r\n\x1a\n'), /neither XML, gzip, zip nor a mail message/],
    [zipFile([{ name: 'readme.txt', data: Buffer.from('no report here') }]), /holds no \.xml report/],
    [gzip('just some text'), /does not hold XML/],
    [Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x01, 0x02]), /gzip file is damaged/],
    [Buffer.from('PK\x03\x04garbage'), /not a readable zip file/],
  ];
  for (const [data, reason] of cases) {
    const result = await unpackReport(data, LIMIT);
    assert.equal(result.ok, false, String(reason));
    assert.match(result.ok ? '' : result.reason, reason);
  }
});
