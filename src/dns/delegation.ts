// Delegated selectors, as Microsoft 365 and Amazon SES do them: the domain
// owner publishes a CNAME per fixed selector once,
//
//   sel1._domainkey.example.com. CNAME sel1.example-com.dkim.relay.example.net.
//
// and the relay publishes each key's TXT record at the target, in a zone it
// controls (dns.delegation.zone), so rotation changes only its own records.
// The rotation planner (src/rotation/plan.ts) names targets with
// delegatedName, so what is planned, printed and published agree.
import { createHash } from 'node:crypto';
import { recordName } from '../common/names.ts';
import { DEFAULT_TTL, txtRecord, type RecordSource, type TxtRecord } from '../keys/record.ts';
import { trimEndOf } from '../message/trim.ts';

export interface Delegation {
  /** The zone the relay controls, where sel1.example-com.<zone> lives. */
  zone: string;
  /** The fixed selectors, in the order they are used (two per algorithm the domain signs with). */
  selectors: readonly string[];
}

/** The dns.delegation setting. */
export interface DelegationSetting {
  zone: string;
  selectors: readonly string[];
  /** Only these signing domains; unset: all of them. */
  domains?: readonly string[] | undefined;
}

/**
 * sel1._domainkey.example.com CNAME sel1.example-com.<zone>: the domain as one
 * label of the relay's zone, distinct for distinct domains. '-' is doubled
 * before '.' becomes '-' (a-b.com → a--b-com, a.b.com → a-b-com); since no
 * label starts or ends with '-', a single '-' is always a dot and a run of
 * them always even. A domain whose label would exceed 63 octets (RFC 1035
 * §2.3.4) keeps a readable prefix and ends in '---' and a SHA-256 digest:
 * a run of three '-' never occurs in the short form, so the two never meet.
 */
export function delegatedName(selector: string, domain: string, zone: string): string {
  return `${selector}.${domainLabel(domain)}.${zone.replace(/\.$/, '')}`;
}

const MAX_LABEL = 63;
const DIGEST_CHARS = 32; // 128 bits

function domainLabel(domain: string): string {
  const bare = domain.replace(/\.$/, '').toLowerCase();
  const label = bare.replaceAll('-', '--').replaceAll('.', '-');
  if (label.length <= MAX_LABEL) return label;
  const digest = createHash('sha256').update(bare).digest('hex').slice(0, DIGEST_CHARS);
  const prefix = trimEndOf(label.slice(0, MAX_LABEL - 3 - DIGEST_CHARS), '-');
  return `${prefix}---${digest}`;
}

export interface CnameRecord {
  /** Where the domain owner publishes it, without the final dot. */
  name: string;
  type: 'CNAME';
  ttl: number;
  /** The target in the relay's zone, without the final dot. */
  value: string;
}

export type CnameFormat = 'zone' | 'value' | 'json';

/** The delegation a signing domain uses, for policyFor(); undefined when its selectors are its own. */
export function delegationFor(config: DelegationSetting | undefined, domain: string): Delegation | undefined {
  if (!config || (config.domains && !config.domains.includes(domain))) return undefined;
  return { zone: config.zone, selectors: config.selectors };
}

/** The CNAMEs the owner of `domain` publishes once, one per fixed selector. */
export function delegatedCnames(domain: string, delegation: Delegation, ttl = DEFAULT_TTL): CnameRecord[] {
  return delegation.selectors.map((selector) => ({
    name: recordName(selector, domain),
    type: 'CNAME',
    ttl,
    value: delegatedName(selector, domain, delegation.zone),
  }));
}

/** A key's TXT record as the relay publishes it in delegated mode: at the CNAME's target. */
export function delegatedTxtRecord(key: RecordSource, delegation: Delegation, ttl = DEFAULT_TTL): TxtRecord {
  return { ...txtRecord(key, ttl), name: delegatedName(key.selector, key.domain, delegation.zone) };
}

/**
 * The CNAMEs as `keys dns --format cname` prints them: zone-file lines, or
 * name and target separated by a tab (for web panels), or JSON (name, type,
 * ttl, value) for provider APIs.
 */
export function formatCnames(records: readonly CnameRecord[], format: CnameFormat = 'zone'): string {
  if (format === 'json') return JSON.stringify(records, null, 2);
  if (format === 'value') return records.map((r) => `${r.name}\t${r.value}`).join('\n');
  return records.map((r) => `${r.name}. ${r.ttl} IN CNAME ${r.value}.`).join('\n');
}
