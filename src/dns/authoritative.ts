// The authoritative servers of the zone a name lives in: the zone is found
// from the SOA record (in the answer, or in the authority section of a
// negative answer, RFC 2308 §3), its servers from its NS records and their
// addresses (glue in the additional section, else A/AAAA lookups).
import type { DnsClient } from './dns-client.ts';
import type { Nameserver } from './nameserver.ts';

export type Authoritative = { ok: true; zone: string; servers: Nameserver[] } | { ok: false; reason: string };

/** Asks `via` (a recursive resolver) for the zone of `domain` and its servers' addresses; they are queried on `port`. */
export async function authoritativeServers(domain: string, via: Nameserver, client: DnsClient, port = 53): Promise<Authoritative> {
  const soa = await client.query(domain, 'SOA', via);
  if (!soa.ok) return { ok: false, reason: soa.reason };
  const zone = soa.records[0]?.name ?? soa.authorities.find((r) => r.type === 'SOA')?.name;
  if (!zone) return { ok: false, reason: `no SOA record found for ${domain} (from ${soa.server})` };
  const ns = await client.query(zone, 'NS', via);
  if (!ns.ok) return { ok: false, reason: ns.reason };
  const names = ns.records.map((r) => r.strings[0]!);
  if (names.length === 0) return { ok: false, reason: `the zone ${zone} has no NS records (from ${ns.server})` };
  const servers: Nameserver[] = [];
  for (const name of names.slice(0, 13)) {
    let addresses = ns.additionals.filter((r) => (r.type === 'A' || r.type === 'AAAA') && r.name === name).map((r) => r.strings[0]!);
    if (addresses.length === 0) {
      const a = await client.query(name, 'A', via);
      addresses = a.ok ? a.records.map((r) => r.strings[0]!) : [];
    }
    for (const host of addresses) if (!servers.some((s) => s.host === host)) servers.push({ host, port });
  }
  if (servers.length === 0) return { ok: false, reason: `no address found for the servers of ${zone} (${names.join(', ')})` };
  return { ok: true, zone, servers };
}
