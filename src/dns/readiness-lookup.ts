// Each domain's SPF and DMARC readiness, looked up side by side within a
// bounded time: what `dkim-relay status` shows live, and what the running
// relay keeps for its status page and DMARC gauge.
import type { RecordType } from 'dns-packet';
import { domainReadiness } from './dns-check.ts';
import { DnsClient, type DnsAnswer, type DnsClientOptions } from './dns-client.ts';
import type { Finding } from './finding.ts';
import { formatNameserver, type Nameserver } from './nameserver.ts';

/** The domain's SPF and DMARC as one DNS server saw them, or why that is not known. */
export type ReadinessResult =
  | { status: 'not-checked' }
  | { status: 'failed'; server: string; reason: string }
  | { status: 'checked'; server: string; spf: string | null; dmarc: string | null; findings: Finding[] };

/** A domain's SPF and DMARC lookups (a few names, each tried twice) get this many dns.timeoutSeconds in all. */
export const READINESS_TIMEOUTS = 4;

/** A lookup that fails or takes too long is reported in the result, never thrown. */
export async function lookUpReadiness(
  domains: readonly string[],
  servers: readonly Nameserver[],
  timeoutSeconds: number,
): Promise<Map<string, ReadinessResult>> {
  const limitMs = READINESS_TIMEOUTS * timeoutSeconds * 1000;
  const client = new BoundedClient({ timeoutMs: timeoutSeconds * 1000 }, Date.now() + limitMs);
  const first = servers[0] ? formatNameserver(servers[0]) : '';
  const results = await Promise.all(
    domains.map(async (domain): Promise<[string, ReadinessResult]> => {
      if (servers.length === 0) return [domain, { status: 'failed', server: '', reason: 'no DNS server to ask (set dns.resolvers or --nameserver)' }];
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<ReadinessResult>((resolve) => {
        timer = setTimeout(() => resolve({ status: 'failed', server: first, reason: `no complete answer within ${limitMs / 1000} s` }), limitMs);
      });
      const lookup = domainReadiness(domain, [...servers], client).then(
        (r): ReadinessResult =>
          'temperror' in r
            ? { status: 'failed', server: r.server, reason: r.temperror }
            : { status: 'checked', server: r.server, spf: r.spf, dmarc: r.dmarc, findings: r.findings },
        (err: unknown): ReadinessResult => ({ status: 'failed', server: first, reason: (err as Error).message }),
      );
      try {
        return [domain, await Promise.race([lookup, late])];
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  return new Map(results);
}

/** Sends no query after its deadline, so a lookup given up on ends soon and the process can exit. */
class BoundedClient extends DnsClient {
  private readonly deadline: number;

  constructor(options: DnsClientOptions, deadline: number) {
    super(options);
    this.deadline = deadline;
  }

  override async query(name: string, type: RecordType, server: Nameserver): Promise<DnsAnswer> {
    if (Date.now() >= this.deadline) return { ok: false, server: formatNameserver(server), reason: 'out of time' };
    return super.query(name, type, server);
  }
}
