// Does DNS serve the record a key needs? match / missing / mismatch / malformed.
import type { RecordSource } from '../keys/record.ts';
import { recordName } from '../common/names.ts';
import { lookupTxt } from './txt.ts';

export type PublishedState = 'match' | 'missing' | 'mismatch' | 'malformed';

export interface PublishedCheck {
  name: string;
  state: PublishedState;
  detail: string;
}

/** Tag list of a DKIM record; FWS inside values is ignored, as verifiers do. */
function tags(value: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const part of value.split(';')) {
    const at = part.indexOf('=');
    if (at > 0) map.set(part.slice(0, at).trim(), part.slice(at + 1).replace(/\s+/g, ''));
  }
  return map;
}

export async function checkPublished(key: RecordSource, nameserver?: string): Promise<PublishedCheck> {
  const name = recordName(key.selector, key.domain);
  const records = (await lookupTxt(name, nameserver)).filter((r) => /^\s*v\s*=\s*DKIM1/i.test(r) || /\bp\s*=/.test(r));
  if (records.length === 0) return { name, state: 'missing', detail: `DNS serves no DKIM record at ${name}` };
  if (records.length > 1) return { name, state: 'malformed', detail: `DNS serves ${records.length} DKIM records at ${name}; receivers need exactly one` };
  const published = tags(records[0]!);
  const p = published.get('p');
  if (p === undefined) return { name, state: 'malformed', detail: `the record at ${name} has no p= tag` };
  if ((published.get('k') ?? 'rsa') !== key.algorithm) {
    return { name, state: 'mismatch', detail: `the record at ${name} says k=${published.get('k') ?? 'rsa'}, the key is ${key.algorithm}` };
  }
  const expected = key.state === 'revoked' ? '' : key.publicData;
  if (p !== expected) {
    const why = expected.startsWith(p) && p.length > 0 ? 'p= is truncated (a panel cut it at 255 characters?)' : 'p= differs from the key store';
    return { name, state: 'mismatch', detail: `the record at ${name}: ${why}` };
  }
  return { name, state: 'match', detail: `${name} serves this key` };
}
