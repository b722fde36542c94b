// `dns check`: every key that must be published, resolved at each server and
// judged against the key store, plus each signing domain's DMARC readiness.
import { getDomain } from 'tldts';
import { recordName } from '../common/names.ts';
import type { StoredKey } from '../keys/store.ts';
import { delegatedName, type Delegation } from './delegation.ts';
import { disagreement } from './disagreement.ts';
import type { DnsAnswer, DnsClient, Transport } from './dns-client.ts';
import { readiness, type DomainReadiness } from './dmarc-readiness.ts';
import { finding, type Finding } from './finding.ts';
import { FAILING, judgeKey, type RecordStatus } from './key-status.ts';
import { formatNameserver, type Nameserver } from './nameserver.ts';
import { isSpf, SPF_MAX_DEPTH, spfReferences } from './spf.ts';

/** Lifecycle states whose record must be in DNS; a revoked key is published with an empty p=. */
export const PUBLISHED_STATES: readonly string[] = ['pending', 'active', 'retiring', 'revoked'];

export interface ServerResult {
  server: string;
  status: RecordStatus;
  transport?: Transport;
  ttl?: number;
  /** The name asked, then each CNAME target. */
  chain?: string[];
  /** Each TXT record served, as its character-strings. */
  records?: string[][];
  findings: Finding[];
}

export interface KeyReport {
  domain: string;
  selector: string;
  name: string;
  state: string;
  /** The worst status over all servers. */
  status: RecordStatus;
  servers: ServerResult[];
  disagreement: string | null;
}

export interface DomainReport {
  domain: string;
  /** The servers asked for this domain. */
  servers: string[];
  keys: KeyReport[];
  readiness: (DomainReadiness & { server: string }) | { server: string; temperror: string };
}

export interface CheckReport {
  /** false when a record that must be published is not (missing, mismatch, malformed, temperror). */
  ok: boolean;
  domains: DomainReport[];
}

/** Worst first: the status a key gets when servers differ. */
const SEVERITY: readonly RecordStatus[] = ['malformed', 'mismatch', 'missing', 'temperror', 'stale', 'revoked', 'match'];

/** SPF records fetched when following includes, at most. */
const MAX_SPF_FETCHES = 30;

export interface CheckOptions {
  keys: StoredKey[];
  client: DnsClient;
  /** The servers to ask about a domain (fixed, or its authoritative servers). */
  serversFor: (domain: string) => Promise<Nameserver[]>;
  /** The delegated selectors a domain uses (dns.delegation): its names must then be CNAMEs into the relay's zone. */
  delegation?: (domain: string) => Delegation | undefined;
}

export async function checkDns({ keys, client, serversFor, delegation = () => undefined }: CheckOptions): Promise<CheckReport> {
  const published = keys.filter((k) => PUBLISHED_STATES.includes(k.state));
  const domains = [...new Set(published.map((k) => k.domain))];
  const reports = await Promise.all(
    domains.map(async (domain): Promise<DomainReport> => {
      const servers = await serversFor(domain);
      const delegated = delegation(domain);
      const keyReports = await Promise.all(published.filter((k) => k.domain === domain).map((key) => checkKey(key, servers, client, delegated)));
      return { domain, servers: servers.map(formatNameserver), keys: keyReports, readiness: await domainReadiness(domain, servers, client) };
    }),
  );
  return { ok: reports.every((d) => d.keys.every((k) => !FAILING.includes(k.status))), domains: reports };
}

async function checkKey(key: StoredKey, servers: Nameserver[], client: DnsClient, delegation: Delegation | undefined): Promise<KeyReport> {
  const name = recordName(key.selector, key.domain);
  const answers = await Promise.all(servers.map((server) => client.query(name, 'TXT', server)));
  const target = delegation && delegatedName(key.selector, key.domain, delegation.zone);
  const results = answers.map((answer) => serverResult(answer, target ? judgeDelegated(key, answer, target) : judgeKey(key, answer)));
  const status = SEVERITY.find((s) => results.some((r) => r.status === s)) ?? 'temperror';
  const views = results.map((r, i) => ({ server: r.server, status: r.status, values: answers[i]!.ok ? r.records!.map((strings) => strings.join('')) : null }));
  return { domain: key.domain, selector: key.selector, name, state: key.state, status, servers: results, disagreement: disagreement(views) };
}

/**
 * Delegated selectors: receivers look up the owner's name, which must be the
 * CNAME to the relay's zone (RFC 1034 §3.6.2), or rotation, which changes
 * only the target, would never reach them. Without it the record is missing.
 */
function judgeDelegated(key: StoredKey, answer: DnsAnswer, target: string): { status: RecordStatus; findings: Finding[] } {
  if (!answer.ok) return judgeKey(key, answer);
  const via = answer.chain[1];
  const fix = "the domain's owner publishes the CNAMEs `dkim-relay keys dns --format cname` prints";
  if (via === undefined) return { status: 'missing', findings: [finding('fail', 'no-cname', `${answer.chain[0]} is no CNAME to ${target}`, fix)] };
  if (via !== target)
    return { status: 'mismatch', findings: [finding('fail', 'cname-elsewhere', `${answer.chain[0]} is a CNAME to ${via}, not to ${target}`, fix)] };
  return judgeKey(key, answer);
}

function serverResult(answer: DnsAnswer, judged: { status: RecordStatus; findings: Finding[] }): ServerResult {
  if (!answer.ok) return { server: answer.server, ...judged };
  return {
    server: answer.server,
    status: judged.status,
    transport: answer.transport,
    ...(answer.records.length > 0 ? { ttl: Math.min(...answer.records.map((r) => r.ttl)) } : {}),
    chain: answer.chain,
    records: answer.records.map((r) => r.strings),
    findings: judged.findings,
  };
}

/** SPF and DMARC as the first server that answers sees them. */
export async function domainReadiness(domain: string, servers: Nameserver[], client: DnsClient): Promise<DomainReport['readiness']> {
  let reason = 'no server to ask';
  for (const server of servers) {
    const where = formatNameserver(server);
    const txt = await client.query(domain, 'TXT', server);
    if (!txt.ok) {
      reason = txt.reason;
      continue;
    }
    const domainTxt = txt.records.map((r) => r.strings.join(''));
    let dmarc = await dmarcAt(`_dmarc.${domain}`, server, client);
    const org = getDomain(domain);
    // RFC 7489 §6.6.3: without a record at the domain, the organisational domain's applies.
    if (dmarc.ok && dmarc.txt.length === 0 && org && org !== domain) {
      const inherited = await dmarcAt(`_dmarc.${org}`, server, client);
      if (!inherited.ok || inherited.txt.length > 0) dmarc = inherited;
    }
    if (!dmarc.ok) {
      reason = dmarc.reason;
      continue;
    }
    const spfIncludes = await fetchIncludes(domainTxt.filter(isSpf), server, client);
    return { server: where, ...readiness({ domain, domainTxt, dmarc, spfIncludes }) };
  }
  return { server: servers[0] ? formatNameserver(servers[0]) : '', temperror: reason };
}

async function dmarcAt(
  name: string,
  server: Nameserver,
  client: DnsClient,
): Promise<{ ok: true; name: string; txt: string[] } | { ok: false; reason: string }> {
  const answer = await client.query(name, 'TXT', server);
  return answer.ok ? { ok: true, name, txt: answer.records.map((r) => r.strings.join('')) } : { ok: false, reason: answer.reason };
}

/** The SPF records of included and redirected domains, breadth first, bounded in depth and count. */
async function fetchIncludes(records: string[], server: Nameserver, client: DnsClient): Promise<Map<string, string>> {
  const fetched = new Map<string, string>();
  const asked = new Set<string>();
  let frontier = records.flatMap(spfReferences);
  for (let depth = 0; depth < SPF_MAX_DEPTH && frontier.length > 0; depth++) {
    const next: string[] = [];
    for (const domain of frontier) {
      if (asked.has(domain) || asked.size >= MAX_SPF_FETCHES) continue;
      asked.add(domain);
      const answer = await client.query(domain, 'TXT', server);
      const spf = answer.ok ? answer.records.map((r) => r.strings.join('')).find(isSpf) : undefined;
      if (spf === undefined) continue;
      fetched.set(domain, spf);
      next.push(...spfReferences(spf));
    }
    frontier = next;
  }
  return fetched;
}
