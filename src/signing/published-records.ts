// The DKIM key records a verification may use, given by name: what the key
// store publishes, read before the check so that the check itself needs no
// store and no network (and can run in a crypto thread).
import type { DNSResolver } from 'mailauth';

/** TXT values by DNS name (lower case, no final dot). */
export type PublishedRecords = Readonly<Record<string, string>>;

/** The name a record is found under in PublishedRecords. */
export function recordKey(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/** A resolver, in the shape mailauth takes, that answers from the records given and from nothing else. */
export function recordsResolver(records: PublishedRecords): DNSResolver {
  return async (name, rrtype) => {
    const key = recordKey(name);
    const value = rrtype === 'TXT' && Object.hasOwn(records, key) ? records[key] : undefined;
    if (value === undefined) throw Object.assign(new Error(`${name} is not in the key store`), { code: 'ENOTFOUND' });
    return [[value]];
  };
}
