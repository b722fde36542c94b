// The DNS side of direct delivery: a domain's MX records and a host's
// addresses, through the system's resolver or the nameservers configured.
// Every failure is sorted into "the name does not exist" (permanent) and "no
// answer now" (temporary, RFC 5321 §5.1: "the message MUST be queued and
// retried later").
import { Resolver } from 'node:dns/promises';
import { formatNameserver, parseNameserver } from '../dns/nameserver.ts';
import type { MxRecord } from './mx-route.ts';

/** Per try; c-ares doubles it on the second try, so a silent server costs about 6 s. */
const TIMEOUT_MS = 2000;
const TRIES = 2;

export type DnsOutcome = 'nxdomain' | 'nodata' | 'temporary';

/** What a resolver error code means for routing, and in words. */
export function dnsFailure(code: string | undefined): { outcome: DnsOutcome; reason: string } {
  switch (code) {
    case 'ENOTFOUND':
      return { outcome: 'nxdomain', reason: 'no such domain (NXDOMAIN)' };
    case 'ENODATA':
      return { outcome: 'nodata', reason: 'no record of that type' };
    case 'ESERVFAIL':
      return { outcome: 'temporary', reason: 'server failure (SERVFAIL)' };
    case 'ETIMEOUT':
      return { outcome: 'temporary', reason: 'no answer (timeout)' };
    case 'EREFUSED':
      return { outcome: 'temporary', reason: 'query refused' };
    case 'ECONNREFUSED':
      return { outcome: 'temporary', reason: 'nameserver unreachable' };
    default:
      return { outcome: 'temporary', reason: `lookup failed (${code ?? 'unknown error'})` };
  }
}

export type MxAnswer = { ok: true; records: MxRecord[] } | { ok: false; outcome: DnsOutcome; reason: string };
export type AddressAnswer = { ok: true; addresses: string[] } | { ok: false; temporary: boolean; reason: string };

export class MxLookup {
  private readonly resolver: Resolver;
  readonly servers: string;

  /** `nameservers`: IP[:PORT] each; none: the system's. */
  constructor(nameservers: string[] = []) {
    this.resolver = new Resolver({ timeout: TIMEOUT_MS, tries: TRIES });
    if (nameservers.length > 0) this.resolver.setServers(nameservers.map((s) => formatNameserver(parseNameserver(s))));
    this.servers = this.resolver.getServers().join(', ') || 'the system resolver';
  }

  async mx(domain: string): Promise<MxAnswer> {
    try {
      return { ok: true, records: await this.resolver.resolveMx(domain) };
    } catch (err) {
      const { outcome, reason } = dnsFailure((err as NodeJS.ErrnoException).code);
      return { ok: false, outcome, reason: `MX lookup of ${domain}: ${reason} at ${this.servers}` };
    }
  }

  /** IPv4 addresses first, then IPv6 (CNAMEs followed, as c-ares does). */
  async addresses(host: string): Promise<AddressAnswer> {
    const [v4, v6] = await Promise.all([this.resolve(() => this.resolver.resolve4(host)), this.resolve(() => this.resolver.resolve6(host))]);
    const addresses = [...(Array.isArray(v4) ? v4 : []), ...(Array.isArray(v6) ? v6 : [])];
    if (addresses.length > 0) return { ok: true, addresses };
    const failures = [v4, v6] as { outcome: DnsOutcome; reason: string }[];
    const temporary = failures.find((f) => f.outcome === 'temporary');
    if (temporary) return { ok: false, temporary: true, reason: `address lookup of ${host}: ${temporary.reason} at ${this.servers}` };
    const missing = failures.some((f) => f.outcome === 'nxdomain') ? 'no such host (NXDOMAIN)' : 'no A or AAAA record';
    return { ok: false, temporary: false, reason: `address lookup of ${host}: ${missing}` };
  }

  private async resolve(query: () => Promise<string[]>): Promise<string[] | { outcome: DnsOutcome; reason: string }> {
    try {
      return await query();
    } catch (err) {
      return dnsFailure((err as NodeJS.ErrnoException).code);
    }
  }
}
