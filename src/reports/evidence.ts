// The evidence the status report, page and gauges show per domain, built from
// the same summary `dkim-relay reports` prints, so the numbers agree.
import type { KeyStore } from '../keys/key-store.ts';
import type { Breakage, FailingSource, ReceiverEvidence } from '../observability/receiver-evidence.ts';
import { dmarcPassed } from './report-model.ts';
import type { ReportStore, StoredRecord } from './report-store.ts';
import { keyName, relayKeysOf, summarise, type RelayKeys } from './summary.ts';

const DAY_SECONDS = 86_400;

/** Per domain, the reports whose period ended in the last `days` days before nowMs. */
export async function readEvidence(reports: ReportStore, store: Pick<KeyStore, 'list'>, days: number, nowMs: number): Promise<Map<string, ReceiverEvidence>> {
  const since = Math.floor(nowMs / 1000) - days * DAY_SECONDS;
  const relayKeys = relayKeysOf(store.list());
  return receiverEvidence(await reports.records(since), await reports.reportCounts(since), relayKeys, days);
}

export function receiverEvidence(
  records: readonly StoredRecord[],
  reportCounts: ReadonlyMap<string, number>,
  relayKeys: RelayKeys,
  days: number,
): Map<string, ReceiverEvidence> {
  const out = new Map<string, ReceiverEvidence>();
  for (const s of summarise(records, reportCounts, relayKeys)) {
    const mine = records.filter((r) => r.domain === s.domain);
    out.set(s.domain, {
      domain: s.domain,
      days,
      reports: s.reports,
      messages: s.messages,
      dmarcPass: s.dmarcPass,
      passShare: s.passShare,
      failingSources: failingSources(mine),
      relaySignedFailing: { messages: s.relaySignedFailing.messages, breakages: breakages(mine, relayKeys) },
      notRelaySigned: { messages: s.notRelaySigned.messages, sources: s.notRelaySigned.sources.map(({ sourceIp, messages }) => ({ sourceIp, messages })) },
    });
  }
  return out;
}

/** Sources with mail failing DMARC, most first; a failing record had neither aligned DKIM nor aligned SPF (RFC 7489 §6.6.2). */
function failingSources(records: readonly StoredRecord[]): FailingSource[] {
  const sources = new Map<string, { messages: number; why: Set<string> }>();
  for (const r of records.filter((r) => !dmarcPassed(r))) {
    const s = sources.get(r.sourceIp) ?? { messages: 0, why: new Set<string>() };
    s.messages += r.count;
    if (r.dkim.length === 0) s.why.add('no DKIM signature');
    for (const d of r.dkim) {
      if (d.result !== 'pass') s.why.add(`DKIM ${d.result} d=${d.domain}${d.selector ? ` s=${d.selector}` : ''}`);
      else s.why.add(`DKIM d=${d.domain} not aligned`);
    }
    s.why.add('SPF not aligned');
    sources.set(r.sourceIp, s);
  }
  return [...sources]
    .map(([sourceIp, s]) => ({ sourceIp, messages: s.messages, why: [...s.why] }))
    .sort((a, b) => b.messages - a.messages || a.sourceIp.localeCompare(b.sourceIp));
}

/** The relay's signatures receivers saw fail, by selector (and so chain) and receiver; a message with one passing relay signature is not broken. */
function breakages(records: readonly StoredRecord[], relayKeys: RelayKeys): Breakage[] {
  const found = new Map<string, Breakage>();
  for (const r of records) {
    const relay = r.dkim.filter((d) => d.selector !== undefined && relayKeys.has(keyName(d.domain, d.selector)));
    if (relay.length === 0 || relay.some((d) => d.result === 'pass')) continue;
    for (const selector of new Set(relay.map((d) => d.selector!))) {
      const key = `${selector}\0${r.orgName}`;
      const client = relay.filter((d) => d.selector === selector).map((d) => relayKeys.get(keyName(d.domain, selector)))[0];
      const b = found.get(key) ?? { selector, ...(client ? { client } : {}), receiver: r.orgName, messages: 0 };
      b.messages += r.count;
      found.set(key, b);
    }
  }
  return [...found.values()].sort((a, b) => b.messages - a.messages || a.selector.localeCompare(b.selector) || a.receiver.localeCompare(b.receiver));
}
