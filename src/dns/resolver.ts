// The resolver every DNS lookup of ours goes through: the system's, or one
// nameserver named on the command line, with a bounded wait. A lookup that
// gets no usable answer becomes one sentence saying what happened where.
import { Resolver } from 'node:dns/promises';
import type { DNSResolver } from 'mailauth';
import { UserError } from '../common/errors.ts';
import { parseHostPort } from '../common/host-port.ts';

/** Per try; c-ares doubles it on the second try, so a silent server costs about 6 s. */
const TIMEOUT_MS = 2000;
const TRIES = 2;

/** DNS gave no answer we can judge by (timeout, refusal, SERVFAIL): a failed check, not a verdict. */
export class DnsLookupFailed extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DnsLookupFailed';
  }
}

/**
 * `--nameserver`: an IP address with an optional port (192.0.2.53, 192.0.2.53:5353,
 * 2001:db8::53, [2001:db8::53]:5353), checked before any query is sent.
 */
export function parseNameserverOption(input: string): string {
  const text = input.trim();
  if (!parseHostPort(text, { defaultPort: 53 })) {
    throw new UserError(
      `--nameserver ${JSON.stringify(input)} is not an IP address with an optional port`,
      'give e.g. --nameserver 192.0.2.53, 192.0.2.53:5353 or [2001:db8::53]:5353',
    );
  }
  return text;
}

export function newResolver(nameserver?: string): Resolver {
  const resolver = new Resolver({ timeout: TIMEOUT_MS, tries: TRIES });
  if (nameserver) resolver.setServers([parseNameserverOption(nameserver)]);
  return resolver;
}

/** Turns a resolver error into DnsLookupFailed; `null` for "no such name or record", which is an answer. */
export function lookupFailure(err: unknown, name: string, resolver: Resolver, elapsedMs: number): DnsLookupFailed | null {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (code === 'ENOTFOUND' || code === 'ENODATA') return null;
  const where = resolver.getServers().join(', ') || 'the system resolver';
  const what: Record<string, string> = {
    ETIMEOUT: `timed out after ${Math.max(1, Math.round(elapsedMs / 1000))} s`,
    EREFUSED: 'the query was refused',
    ECONNREFUSED: 'connection refused',
    ESERVFAIL: 'server failure (SERVFAIL)',
  };
  return new DnsLookupFailed(`DNS lookup of ${name} failed: ${what[code] ?? (code || (err as Error).message)} at ${where}`);
}

/** A resolver in the shape mailauth takes, asking `nameserver` (verify --dns --nameserver). */
export function mailauthResolver(nameserver: string): DNSResolver {
  const resolver = newResolver(nameserver);
  return (name, rrtype) => resolver.resolve(name, rrtype as 'TXT') as Promise<string[][]>;
}
