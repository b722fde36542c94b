// Delegated selectors, as Microsoft 365 and Amazon SES do them: the domain
// owner publishes a CNAME per fixed selector once,
//
//   sel1._domainkey.example.com. CNAME sel1.example-com.dkim.relay.example.net.
//
// and the relay publishes each key's TXT record at the target, in a zone it
// controls (dns.delegation.zone), so rotation changes only its own records.
// The target name is the rotation planner's (src/rotation/plan.ts), so what
// is planned, printed and published agree.
import type { Config } from '../config/schema.ts';
import { recordName } from '../keys/names.ts';
import { DEFAULT_TTL, txtRecord, type RecordSource, type TxtRecord } from '../keys/record.ts';
import { delegatedName } from '../rotation/plan.ts';
import type { Delegation } from '../rotation/policy.ts';

export { delegatedName };

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
export function delegationFor(config: Config['dns']['delegation'], domain: string): Delegation | undefined {
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
