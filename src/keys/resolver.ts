// A DNS resolver, in the shape mailauth takes, that answers from the key store.
// The self-check verifies against the key we hold, with no network involved.
import type { DNSResolver } from 'mailauth';
import type { KeyStore } from './key-store.ts';

export function storeResolver(store: KeyStore): DNSResolver {
  return async (name, rrtype) => {
    const value = rrtype === 'TXT' ? store.publishedValue(name) : undefined;
    if (value === undefined) throw Object.assign(new Error(`${name} is not in the key store`), { code: 'ENOTFOUND' });
    return [[value]];
  };
}
