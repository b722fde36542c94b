// What the scheduler asks DNS before it lets a key move on: the servers that
// must serve a domain's records (its zone's authoritative servers and every
// dns.resolvers entry), and what one of them serves for one key, judged as
// `dns check` judges it.
//
// With delegated selectors the name receivers look up is still the domain
// owner's, sel1._domainkey.example.com, a CNAME into the relay's zone. So a
// resolver is asked that name and the CNAME is followed; the owner's zone's
// servers must serve the CNAME, and the relay's zone's servers the TXT record
// at its target. A key whose CNAME the owner never published stays pending.
import { authoritativeServers } from '../dns/authoritative.ts';
import { delegatedName, type Delegation } from '../dns/delegation.ts';
import { DnsClient, type DnsAnswer } from '../dns/dns-client.ts';
import { judgeKey, type RecordStatus } from '../dns/key-status.ts';
import { configuredNameservers, formatNameserver, parseNameserver, type Nameserver } from '../dns/nameserver.ts';
import { recordName } from '../common/names.ts';
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
  /** The delegated selectors a domain uses (dns.delegation), if any. */
  delegation?: (domain: string) => Delegation | undefined;
}

/** For the gate, a correctly revoked record is as good as a match; a stale one is not what must be served. */
const OBSERVED: Record<RecordStatus, ObservedState> = {
  match: 'match',
  revoked: 'match',
  stale: 'mismatch',
  missing: 'missing',
  mismatch: 'mismatch',
  malformed: 'malformed',
  temperror: 'unreachable',
};

/** What a server is asked in delegated mode: the owner's zone serves the CNAME, the relay's the TXT, a resolver both. */
type Role = 'owner' | 'relay' | 'resolver';

/** Asks real DNS servers; one instance per pass, so a server that timed out is not waited for again in that pass. */
export class LiveDnsObserver implements DnsObserver {
  private readonly client: DnsClient;
  private readonly resolvers: Nameserver[];
  private readonly port: number;
  private readonly delegation: (domain: string) => Delegation | undefined;
  /** Names standing for authoritative servers that could not be found, and why. */
  private readonly unfound = new Map<string, string>();
  /** "domain server" → what that server is asked for the domain's keys, in delegated mode. */
  private readonly roles = new Map<string, Set<Role>>();

  constructor(options: DnsObserverOptions) {
    this.client = new DnsClient({ timeoutMs: options.timeoutMs });
    this.resolvers = configuredNameservers(options.resolvers);
    this.port = options.authoritativePort ?? 53;
    this.delegation = options.delegation ?? (() => undefined);
  }

  async servers(domain: string): Promise<string[]> {
    const resolvers = this.resolvers.map(formatNameserver);
    const owner = await this.authoritative(domain);
    const delegation = this.delegation(domain);
    if (!delegation) return [...new Set([...owner, ...resolvers])];
    const relay = await this.authoritative(delegation.zone);
    const groups: [Role, string[]][] = [
      ['owner', owner],
      ['relay', relay],
      ['resolver', resolvers],
    ];
    for (const [role, servers] of groups) {
      for (const server of servers) this.roles.set(`${domain} ${server}`, new Set([...(this.roles.get(`${domain} ${server}`) ?? []), role]));
    }
    return [...new Set([...owner, ...relay, ...resolvers])];
  }

  async check(key: StoredKey, server: string): Promise<{ state: ObservedState; detail: string }> {
    const unfound = this.unfound.get(server);
    if (unfound !== undefined) return { state: 'unreachable', detail: `not found: ${unfound}` };
    const owner = recordName(key.selector, key.domain);
    const at = parseNameserver(server);
    const delegation = this.delegation(key.domain);
    const roles = this.roles.get(`${key.domain} ${server}`);
    // A server that answers for both zones, or a resolver, follows the CNAME itself.
    if (delegation && roles && !roles.has('resolver') && !(roles.has('owner') && roles.has('relay'))) {
      const target = delegatedName(key.selector, key.domain, delegation.zone);
      if (roles.has('owner')) return this.cname(owner, target, at);
      return judged(key, await this.client.query(target, 'TXT', at));
    }
    return judged(key, await this.client.query(owner, 'TXT', at));
  }

  /** The zone's authoritative servers; never fewer than must be asked: a placeholder that never matches holds the key back. */
  private async authoritative(name: string): Promise<string[]> {
    const via = this.resolvers[0];
    const found = via ? await authoritativeServers(name, via, this.client, this.port) : { ok: false as const, reason: 'no resolver to ask' };
    if (found.ok) return found.servers.map(formatNameserver);
    const placeholder = `authoritative servers of ${name}`;
    this.unfound.set(placeholder, found.reason);
    return [placeholder];
  }

  /** Does the owner's zone serve the CNAME to the relay's zone? */
  private async cname(owner: string, target: string, server: Nameserver): Promise<{ state: ObservedState; detail: string }> {
    const answer = await this.client.query(owner, 'CNAME', server);
    if (!answer.ok) return { state: 'unreachable', detail: answer.reason };
    const served = answer.records[0]?.strings[0];
    if (served === target) return { state: 'match', detail: `${owner} is a CNAME to ${target}` };
    if (served === undefined)
      return { state: 'missing', detail: `${owner} is no CNAME to ${target}: the domain's owner publishes it (dkim-relay keys dns --format cname)` };
    return { state: 'mismatch', detail: `${owner} is a CNAME to ${served}, not to ${target}` };
  }
}

function judged(key: StoredKey, answer: DnsAnswer): { state: ObservedState; detail: string } {
  const result = judgeKey(key, answer);
  const worst = result.findings.find((f) => f.level === 'fail') ?? result.findings[0];
  return { state: OBSERVED[result.status], detail: worst ? worst.message : result.status };
}
