// Both aggregate report schemas into one model; entities never expanded.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseReportXml } from '../../src/reports/report-xml.ts';
import { validateReport } from '../../src/reports/validation.ts';
import { BIS, GOOGLE, MICROSOFT, reportXml } from './support.ts';

function parsed(xml: string) {
  const r = parseReportXml(xml);
  assert.ok(r.ok, r.ok ? '' : r.reason);
  return r.value;
}

test('an RFC 7489 report: metadata, policy with pct, records with their DKIM and SPF results', () => {
  const r = parsed(reportXml(GOOGLE));
  assert.equal(r.format, 'rfc7489');
  assert.equal(r.orgName, 'google.com');
  assert.equal(r.reportId, GOOGLE.reportId);
  assert.equal(r.begin, GOOGLE.begin);
  assert.equal(r.end, GOOGLE.end);
  assert.deepEqual(r.policy, { domain: 'example.com', p: 'none', adkim: 'r', aspf: 'r', sp: 'none', pct: 100 });
  assert.equal(r.records.length, 3);
  assert.deepEqual(r.records[1], {
    sourceIp: '192.0.2.10',
    count: 3,
    disposition: 'none',
    dkimAligned: 'fail',
    spfAligned: 'fail',
    reasons: [],
    headerFrom: 'example.com',
    dkim: [{ domain: 'example.com', selector: 'relay1', result: 'fail' }],
    spf: [{ domain: 'example.com', result: 'softfail' }],
  });
  assert.equal(r.records[2]!.dkim.length, 0);
  assert.ok(validateReport(r).ok);
});

test('a Microsoft report: xsd/xsi declarations and envelope_to are read as RFC 7489', () => {
  const r = parsed(reportXml(MICROSOFT));
  assert.equal(r.format, 'rfc7489');
  assert.equal(r.orgName, 'Enterprise Outlook');
  assert.equal(r.records[0]!.envelopeTo, 'recipient.example');
});

test('a DMARCbis report: its namespace, generator, np, testing, discovery_method, envelope_from and SPF scope', () => {
  const r = parsed(reportXml(BIS));
  assert.equal(r.format, 'dmarcbis');
  assert.equal(r.generator, 'Example Reporter 3.1');
  assert.deepEqual(r.policy, {
    domain: 'example.com',
    p: 'none',
    adkim: 'r',
    aspf: 'r',
    sp: 'none',
    np: 'reject',
    fo: '1',
    testing: 'n',
    discoveryMethod: 'treewalk',
  });
  assert.equal(r.records[0]!.sourceIp, '2001:db8::25');
  assert.equal(r.records[0]!.envelopeFrom, 'example.com');
  assert.deepEqual(r.records[0]!.spf, [{ domain: 'example.com', scope: 'mfrom', result: 'pass' }]);
  assert.equal(r.records[0]!.dkim.length, 2);
});

test('a namespace prefix on every element is read the same', () => {
  const xml = reportXml(BIS)
    .replace(/<(\/?)([a-z_]+)>/g, '<$1d:$2>')
    .replace('<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0">', '<d:feedback xmlns:d="urn:ietf:params:xml:ns:dmarc-2.0">');
  const r = parsed(xml);
  assert.equal(r.format, 'dmarcbis');
  assert.equal(r.records.length, 2);
  assert.equal(r.orgName, 'mail.example.net');
});

test('billion laughs: a DOCTYPE with entities is refused, nothing expanded', () => {
  const entities = ['<!ENTITY lol0 "lol">', ...Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i};`.repeat(10)}">`)].join('');
  const xml = reportXml(GOOGLE)
    .replace('<feedback>', `<!DOCTYPE feedback [${entities}]><feedback>`)
    .replace('<org_name>google.com</org_name>', '<org_name>&lol9;</org_name>');
  const before = process.memoryUsage().rss;
  const r = parseReportXml(xml);
  assert.equal(r.ok, false);
  assert.match(r.ok ? '' : r.reason, /DOCTYPE/);
  assert.ok(process.memoryUsage().rss - before < 50 * 1024 * 1024);
});

test('an undeclared entity stays as written; the predefined ones and character references are decoded once', () => {
  const xml = reportXml(GOOGLE).replace('<org_name>google.com</org_name>', '<org_name>AT&amp;T &#x41;&#66; &lol; &amp;lt;</org_name>');
  assert.equal(parsed(xml).orgName, 'AT&T AB &lol; &lt;');
});

test('what is not a report is refused with its reason, never thrown', () => {
  for (const [xml, reason] of [
    ['<feedback><report_metadata>', /not well-formed/],
    ['<html><body>hi</body></html>', /no <feedback>/],
    ['', /not well-formed/],
  ] as const) {
    const r = parseReportXml(xml);
    assert.equal(r.ok, false, xml);
    assert.match(r.ok ? '' : r.reason, reason);
  }
});

test('validation names the first field that is missing or wrong', () => {
  const cases: [string, RegExp][] = [
    [reportXml(GOOGLE).replace(/<report_id>[^<]*<\/report_id>/, ''), /report_id/],
    [reportXml(GOOGLE).replace(/<org_name>[^<]*<\/org_name>/, ''), /org_name/],
    [reportXml(GOOGLE).replace(`<begin>${GOOGLE.begin}</begin>`, '<begin>yesterday</begin>'), /date_range/],
    [reportXml(GOOGLE).replace('<source_ip>198.51.100.7</source_ip>', '<source_ip>not-an-ip</source_ip>'), /record 3: source_ip/],
    [reportXml(GOOGLE).replace('<count>20</count>', '<count>-20</count>'), /record 3: count/],
    [reportXml(GOOGLE).replace('<domain>example.com</domain><adkim>', '<domain>nodots</domain><adkim>'), /policy_published\/domain/],
    [reportXml(GOOGLE).replace(/<record>[\s\S]*<\/record>/, ''), /no <record>/],
  ];
  for (const [xml, reason] of cases) {
    const r = validateReport(parsed(xml));
    assert.equal(r.ok, false);
    assert.match(r.ok ? '' : r.reason, reason);
  }
});

test('the dmarc.org draft namespace many receivers still declare reads as RFC 7489', () => {
  const r = parsed(reportXml(GOOGLE).replace('<feedback>', '<feedback xmlns="http://dmarc.org/dmarc-xml/0.1">'));
  assert.equal(r.format, 'rfc7489');
  assert.equal(r.records.length, 3);
});
