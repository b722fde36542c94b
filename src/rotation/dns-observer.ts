// What the scheduler asks DNS before it lets a key move on: the servers that
// must serve a domain's records (its zone's authoritative servers and every
// dns.resolvers entry), and what one of them serves for one key, judged as
// `dns check` judges it.
import { authoritativeServers } from '../dns/authoritative.ts';
import { DnsClient } from '../dns/dns-client.ts';
import { judgeKey, type KeyStatus } from '../dns/key-status.ts';
import { formatNameserver, parseNameserver, systemNameservers, type Nameserver } from '../dns/nameserver.ts';
import { recordName } from '../keys/names.ts';
import type { StoredKey } from '../keys/store.ts';
import type { ObservedState } from './observation.ts';

export interface DnsObserver {
  /** The servers that must serve the domain's records, as "IP:PORT" (or a name standing for servers not found). */
  servers(domain: string): Promise<string[]>;
  check(key: StoredKey, server: string): Promise<{ state: ObservedState; detail: string }>;
}

export interface DnsObserverOptions {
  /** dns.resolvers; empty: the system resolver's servers. */
  resolvers: readonly string[];
  timeoutMs: number;
  /** Port the authoritative servers are asked on: 53, except in tests. */
  authoritativePort?: number;
}

/** For the gate, a correctly revoked record is as good as a match; a stale one is not what must be served. */
const OBSERVED: Record<KeyStatus, ObservedState> = {
  match: 'match', revoked: 'match', stale: 'mismatch', missing: 'missing', mismatch: 'mismatch', malformed: 'malformed', temperror: 'unreachable',
};

/** Asks real DNS servers; one instance per pass, so a server that timed out is not waited for again in that pass. */
export class LiveDnsObserver implements DnsObserver {
  private readonly client: DnsClient;
  private readonly resolvers: Nameserver[];
  private readonly port: number;
  /** Names standing for authoritative servers that could not be found, and why. */
  private readonly unfound = new Map<string, string>();

  constructor(options: DnsObserverOptions) {
    this.client = new DnsClient({ timeoutMs: options.timeoutMs });
    this.resolvers = options.resolvers.length > 0 ? options.resolvers.map(parseNameserver) : systemNameservers();
    this.port = options.authoritativePort ?? 53;
  }

  async servers(domain: string): Promise<string[]> {
    const resolvers = this.resolvers.map(formatNameserver);
    const via = this.resolvers[0];
    const found = via ? await authoritativeServers(domain, via, this.client, this.port) : { ok: false as const, reason: 'no resolver to ask' };
    if (found.ok) return [...new Set([...found.servers.map(formatNameserver), ...resolvers])];
    // Never fewer servers than must be asked: a placeholder that never matches holds the key back.
    const placeholder = `authoritative servers of ${domain}`;
    this.unfound.set(placeholder, found.reason);
    return [placeholder, ...resolvers];
  }

  async check(key: StoredKey, server: string): Promise<{ state: ObservedState; detail: string }> {
    const unfound = this.unfound.get(server);
    if (unfound !== undefined) return { state: 'unreachable', detail: `not found: ${unfound}` };
    const answer = await this.client.query(recordName(key.selector, key.domain), 'TXT', parseNameserver(server));
    const judged = judgeKey(key, answer);
    const worst = judged.findings.find((f) => f.level === 'fail') ?? judged.findings[0];
    return { state: OBSERVED[judged.status], detail: worst ? worst.message : judged.status };
  }
}
