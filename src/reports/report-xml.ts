// The XML of an aggregate report into the report model. Both schemas share
// element names; the DMARCbis namespace (RFC 9990 §3) says which one it is.
//
// Entities are never expanded: a report with a DOCTYPE is refused outright
// (no receiver sends one, and its entity declarations are how "billion
// laughs" works), and the parser's entity processing is off, so only the five
// predefined entities and character references are decoded, by us, once.
import { XMLParser } from 'fast-xml-parser';
import type { AggregateReport, DkimResult, Checked, PolicyPublished, ReportFormat, ReportRecord, SpfResult } from './report-model.ts';
import { refused } from './report-model.ts';

export const DMARCBIS_NAMESPACE = 'urn:ietf:params:xml:ns:dmarc-2.0';

type Node = Record<string, unknown>;

const parser = new XMLParser({
  processEntities: false,
  htmlEntities: false,
  // Only namespace declarations are kept; no report field is an attribute.
  ignoreAttributes: (name) => !name.startsWith('xmlns'),
  attributeNamePrefix: '@',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
});

const DOCTYPE = /<!DOCTYPE|<!ENTITY/i;

export function parseReportXml(xml: string): Checked<AggregateReport> {
  if (DOCTYPE.test(xml)) return refused('the XML declares a DOCTYPE or entities, which no aggregate report has (entity expansion is never done)');
  let tree: Node;
  try {
    tree = parser.parse(xml, true) as Node;
  } catch (err) {
    return refused(
      `not well-formed XML: ${(err as Error).message
        .split('\n')[0]!
        .replace(/:(\d+|undefined):(\d+|undefined)$/, ' (line $1)')
        .replace(' (line undefined)', '')}`,
    );
  }
  const feedback = child(tree, 'feedback');
  if (!isNode(feedback)) return refused('not a DMARC aggregate report: the XML has no <feedback> root element');
  return { ok: true, value: toReport(feedback, formatOf(feedback)) };
}

function formatOf(feedback: Node): ReportFormat {
  const declared = Object.entries(feedback)
    .filter(([k]) => k.startsWith('@xmlns'))
    .map(([, v]) => String(v));
  return declared.includes(DMARCBIS_NAMESPACE) ? 'dmarcbis' : 'rfc7489';
}

function toReport(feedback: Node, format: ReportFormat): AggregateReport {
  const meta = node(child(feedback, 'report_metadata'));
  const range = node(child(meta, 'date_range'));
  const policy = node(child(feedback, 'policy_published'));
  const published: PolicyPublished = {
    domain: text(policy, 'domain').toLowerCase(),
    p: text(policy, 'p'),
    ...optional('adkim', text(policy, 'adkim')),
    ...optional('aspf', text(policy, 'aspf')),
    ...optional('sp', text(policy, 'sp')),
    ...optional('np', text(policy, 'np')),
    ...optional('fo', text(policy, 'fo')),
    ...optional('testing', text(policy, 'testing')),
    ...optional('discoveryMethod', text(policy, 'discovery_method')),
  };
  const pct = text(policy, 'pct');
  if (pct !== '') published.pct = Number(pct);
  return {
    format,
    orgName: text(meta, 'org_name'),
    email: text(meta, 'email'),
    ...optional('extraContactInfo', text(meta, 'extra_contact_info')),
    reportId: text(meta, 'report_id'),
    ...optional('generator', text(meta, 'generator')),
    begin: integer(text(range, 'begin')),
    end: integer(text(range, 'end')),
    errors: all(meta, 'error').map(scalar),
    policy: published,
    records: all(feedback, 'record').map((r) => toRecord(node(r))),
  };
}

function toRecord(record: Node): ReportRecord {
  const row = node(child(record, 'row'));
  const evaluated = node(child(row, 'policy_evaluated'));
  const ids = node(child(record, 'identifiers'));
  const auth = node(child(record, 'auth_results'));
  return {
    sourceIp: text(row, 'source_ip'),
    count: integer(text(row, 'count')),
    disposition: text(evaluated, 'disposition'),
    dkimAligned: text(evaluated, 'dkim'),
    spfAligned: text(evaluated, 'spf'),
    reasons: all(evaluated, 'reason').map((r) => ({ type: text(node(r), 'type'), ...optional('comment', text(node(r), 'comment')) })),
    headerFrom: text(ids, 'header_from').toLowerCase(),
    ...optional('envelopeFrom', text(ids, 'envelope_from').toLowerCase()),
    ...optional('envelopeTo', text(ids, 'envelope_to').toLowerCase()),
    dkim: all(auth, 'dkim').map((d): DkimResult => ({
      domain: text(node(d), 'domain').toLowerCase(),
      ...optional('selector', text(node(d), 'selector').toLowerCase()),
      result: text(node(d), 'result').toLowerCase(),
    })),
    spf: all(auth, 'spf').map((s): SpfResult => ({
      domain: text(node(s), 'domain').toLowerCase(),
      ...optional('scope', text(node(s), 'scope').toLowerCase()),
      result: text(node(s), 'result').toLowerCase(),
    })),
  };
}

const isNode = (v: unknown): v is Node => typeof v === 'object' && v !== null && !Array.isArray(v);
const node = (v: unknown): Node => (isNode(v) ? v : {});
const localName = (key: string): string => key.slice(key.indexOf(':') + 1);

/** Every child element of that local name, whatever namespace prefix it was written with. */
function all(parent: Node, name: string): unknown[] {
  return Object.entries(parent)
    .filter(([k]) => !k.startsWith('@') && localName(k) === name)
    .flatMap(([, v]) => (Array.isArray(v) ? v : [v]));
}

function child(parent: Node, name: string): unknown {
  return all(parent, name)[0];
}

/** An element's text: a repeated or structured element where text belongs reads as empty. */
function text(parent: Node, name: string): string {
  return scalar(child(parent, name));
}

function scalar(v: unknown): string {
  if (typeof v === 'string') return decodeEntities(v);
  if (typeof v === 'number') return String(v);
  if (isNode(v) && typeof v['#text'] === 'string') return decodeEntities(v['#text']);
  return '';
}

/** NaN for anything but plain decimal digits; validation says what is wrong. */
function integer(s: string): number {
  return /^\d{1,15}$/.test(s) ? Number(s) : Number.NaN;
}

function optional<K extends string>(key: K, value: string): { [P in K]?: string } {
  return (value === '' ? {} : { [key]: value }) as { [P in K]?: string };
}

const PREDEFINED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

/** XML 1.0 §4.6 predefined entities and §4.1 character references; anything else stays as written. */
function decodeEntities(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(
    /&(?:#x([0-9a-f]{1,6})|#(\d{1,7})|(lt|gt|amp|quot|apos));/gi,
    (whole, hex: string | undefined, dec: string | undefined, name: string | undefined) => {
      if (name) return PREDEFINED[name.toLowerCase()] ?? whole;
      const code = hex ? parseInt(hex, 16) : Number(dec);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    },
  );
}
