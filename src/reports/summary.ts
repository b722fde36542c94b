// What the stored reports say about each domain, for moving its DMARC policy
// from p=none to p=reject: how much mail receivers saw and how much passed;
// which sources send it and whether their DKIM aligned; mail the relay signed
// that arrived with a failing signature (broken in transit), each relay
// signature named with the chain whose key made it (a client's own keys, or
// the domain's); and mail the relay never signed (sources still to bring in). Pure.
import { dmarcPassed } from './report-model.ts';
import type { StoredRecord } from './report-store.ts';

export interface Signature {
  domain: string;
  selector: string | null;
  result: string;
  messages: number;
  /** Made with a key of a client's own chain (clients[].name); absent: the domain's keys, or not the relay's. */
  client?: string;
}

export interface SourceSummary {
  sourceIp: string;
  messages: number;
  dmarcPass: number;
  /** Messages whose DKIM aligned with the From domain (policy_evaluated dkim=pass). */
  dkimAligned: number;
  /** The DKIM signatures receivers saw from this source, by d=, s= and result. */
  signatures: Signature[];
}

export interface DomainSummary {
  domain: string;
  reports: number;
  messages: number;
  dmarcPass: number;
  /** dmarcPass / messages, 0 when there were none. */
  passShare: number;
  sources: SourceSummary[];
  /** Signed with one of the relay's keys, and the receiver saw that signature fail. */
  relaySignedFailing: { messages: number; sources: SourceSummary[] };
  /** Carrying no signature of the relay's keys. */
  notRelaySigned: { messages: number; sources: SourceSummary[] };
}

/** `domain/selector` (keyName) of every key the relay holds, to the client whose chain it is in (null: the domain's). */
export type RelayKeys = ReadonlyMap<string, string | null>;

export const keyName = (domain: string, selector: string): string => `${domain.toLowerCase()}/${selector.toLowerCase()}`;

export function relayKeysOf(keys: readonly { domain: string; selector: string; client: string | null }[]): RelayKeys {
  return new Map(keys.map((k) => [keyName(k.domain, k.selector), k.client]));
}

export function summarise(records: readonly StoredRecord[], reportCounts: ReadonlyMap<string, number>, relayKeys: RelayKeys): DomainSummary[] {
  const byDomain = new Map<string, StoredRecord[]>();
  for (const r of records) byDomain.set(r.domain, [...(byDomain.get(r.domain) ?? []), r]);
  return [...byDomain.keys()].sort().map((domain) => {
    const mine = byDomain.get(domain)!;
    const relaySigned = (r: StoredRecord) => r.dkim.some((d) => d.selector !== undefined && relayKeys.has(keyName(d.domain, d.selector)));
    const failing = mine.filter(
      (r) => relaySigned(r) && !r.dkim.some((d) => d.selector !== undefined && relayKeys.has(keyName(d.domain, d.selector)) && d.result === 'pass'),
    );
    const unsigned = mine.filter((r) => !relaySigned(r));
    const messages = total(mine);
    const pass = total(mine.filter(dmarcPassed));
    return {
      domain,
      reports: reportCounts.get(domain) ?? 0,
      messages,
      dmarcPass: pass,
      passShare: messages === 0 ? 0 : pass / messages,
      sources: bySource(mine, relayKeys),
      relaySignedFailing: { messages: total(failing), sources: bySource(failing, relayKeys) },
      notRelaySigned: { messages: total(unsigned), sources: bySource(unsigned, relayKeys) },
    };
  });
}

const total = (records: readonly StoredRecord[]): number => records.reduce((n, r) => n + r.count, 0);

/** Sources by messages, most first; ties by address. */
function bySource(records: readonly StoredRecord[], relayKeys: RelayKeys): SourceSummary[] {
  const sources = new Map<string, { summary: SourceSummary; signatures: Map<string, Signature> }>();
  for (const r of records) {
    let s = sources.get(r.sourceIp);
    if (!s) {
      s = { summary: { sourceIp: r.sourceIp, messages: 0, dmarcPass: 0, dkimAligned: 0, signatures: [] }, signatures: new Map() };
      sources.set(r.sourceIp, s);
    }
    s.summary.messages += r.count;
    if (dmarcPassed(r)) s.summary.dmarcPass += r.count;
    if (r.dkimAligned === 'pass') s.summary.dkimAligned += r.count;
    for (const d of r.dkim) {
      const key = `${d.domain}/${d.selector ?? ''}/${d.result}`;
      const chain = d.selector === undefined ? undefined : relayKeys.get(keyName(d.domain, d.selector));
      const sig = s.signatures.get(key) ?? {
        domain: d.domain,
        selector: d.selector ?? null,
        result: d.result,
        messages: 0,
        ...(chain ? { client: chain } : {}),
      };
      sig.messages += r.count;
      s.signatures.set(key, sig);
    }
  }
  return [...sources.values()]
    .map(({ summary, signatures }) => ({
      ...summary,
      signatures: [...signatures.values()].sort((a, b) => b.messages - a.messages || a.domain.localeCompare(b.domain)),
    }))
    .sort((a, b) => b.messages - a.messages || a.sourceIp.localeCompare(b.sourceIp));
}
