// TXT lookups through the system resolver or a named nameserver. A record's
// character-strings are joined with nothing between them (RFC 6376 §3.6.2.2).
import { lookupFailure, newResolver } from './resolver.ts';

/**
 * Every TXT record at `name`, strings joined; [] when the name or the type does
 * not exist. Throws DnsLookupFailed when DNS does not answer (timeout, REFUSED, SERVFAIL).
 */
export async function lookupTxt(name: string, nameserver?: string): Promise<string[]> {
  const resolver = newResolver(nameserver);
  const started = performance.now();
  try {
    return (await resolver.resolveTxt(name)).map((strings) => strings.join(''));
  } catch (err) {
    const failure = lookupFailure(err, name, resolver, performance.now() - started);
    if (failure === null) return [];
    throw failure;
  }
}
