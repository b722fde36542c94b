// The TXT record a key needs in DNS, in the forms people paste it in:
// zone-file lines (strings of at most 255 octets, RFC 6376 §3.6.2.2), one
// unsplit value for web panels that split by themselves, and JSON for APIs.
import type { Algorithm } from './key-material.ts';
import { recordName } from '../common/names.ts';

export const DEFAULT_TTL = 3600;
const MAX_STRING = 255;

export interface RecordSource {
  domain: string;
  selector: string;
  algorithm: Algorithm;
  publicData: string;
  state: string;
}

export interface TxtRecord {
  name: string;
  type: 'TXT';
  ttl: number;
  value: string;
  /** The value cut into character-strings of at most 255 octets, ready for a zone file. */
  strings: string[];
  state: string;
}

/** v=DKIM1; k=…; p=…  — a revoked key publishes an empty p= (RFC 6376 §3.6.1). */
export function txtValue(key: RecordSource): string {
  const p = key.state === 'revoked' ? '' : key.publicData;
  return `v=DKIM1; k=${key.algorithm}; p=${p}`;
}

export function txtRecord(key: RecordSource, ttl = DEFAULT_TTL): TxtRecord {
  const value = txtValue(key);
  return { name: recordName(key.selector, key.domain), type: 'TXT', ttl, value, strings: splitValue(value), state: key.state };
}

/** Tags in the first string, then p= in pieces, none over 255 octets. */
export function splitValue(value: string): string[] {
  const at = value.indexOf('p=');
  const strings = [value.slice(0, at)];
  for (let rest = value.slice(at); rest.length > 0; rest = rest.slice(MAX_STRING)) strings.push(rest.slice(0, MAX_STRING));
  return strings;
}

/** A zone-file entry; the multi-line ( … ) form is accepted by BIND and Knot alike. */
export function zoneLines(record: TxtRecord): string {
  const quoted = record.strings.map((s) => `"${s}"`);
  return `${record.name}. ${record.ttl} IN TXT ( ${quoted.join('\n\t')} )`;
}
