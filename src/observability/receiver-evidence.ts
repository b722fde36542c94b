// What receivers' DMARC aggregate reports say about a signing domain over a
// window, as plain data (read from the report store by the reports folder,
// passed in here), and the decision it supports: whether the domain's DMARC
// policy can move from p=none to p=quarantine. Pure.

export interface FailingSource {
  sourceIp: string;
  /** Messages from this source that failed DMARC. */
  messages: number;
  /** Why, as receivers saw it: "no DKIM signature", "DKIM d=esp.example not aligned", "DKIM fail s=relay1", "SPF not aligned". */
  why: string[];
}

/** Mail signed with one of the relay's keys that a receiver saw fail DKIM: altered in transit. */
export interface Breakage {
  selector: string;
  /** The client whose own key chain the selector is in (clients[].name); absent: the domain's keys. */
  client?: string;
  /** The receiver's org_name, as its reports name it. */
  receiver: string;
  messages: number;
}

export interface ReceiverEvidence {
  domain: string;
  /** The window: reports whose period ended in the last `days` days. */
  days: number;
  reports: number;
  messages: number;
  dmarcPass: number;
  /** dmarcPass / messages, 0 when there were none. */
  passShare: number;
  /** Most failing messages first. */
  failingSources: FailingSource[];
  relaySignedFailing: { messages: number; breakages: Breakage[] };
  /** Mail from the domain carrying no signature of the relay's keys: sources still to bring in. */
  notRelaySigned: { messages: number; sources: { sourceIp: string; messages: number }[] };
}

/**
 * The rule, strictest reason first:
 * - below MIN_MESSAGES reported messages there is too little to judge;
 * - any relay-signed mail failing DKIM at a receiver means something alters
 *   it in transit, and quarantine would hit the relay's own mail;
 * - under PASS_SHARE of the mail passing DMARC, quarantine would hit real mail;
 * - a failing source carrying MAJOR_SOURCE of the mail or more is most likely
 *   a real sender not yet brought in; smaller failing sources are taken as
 *   forwarders or forgers, which quarantine is meant to catch.
 */
export const READINESS_RULE = { MIN_MESSAGES: 100, PASS_SHARE: 0.98, MAJOR_SOURCE: 0.01 } as const;

export type DmarcVerdict =
  { state: 'no-reports'; line: string } | { state: 'not-yet'; reason: string; line: string } | { state: 'ready'; policy: 'quarantine'; line: string };

export function dmarcVerdict(domain: string, days: number, evidence: ReceiverEvidence | undefined): DmarcVerdict {
  if (!evidence || evidence.messages === 0) {
    return {
      state: 'no-reports',
      line:
        `no DMARC aggregate reports for the last ${days} days: publish rua=mailto:ADDRESS in _dmarc.${domain}, ` +
        'then set reports.imap to that mailbox or add the reports with dkim-relay reports import FILE...',
    };
  }
  const { MIN_MESSAGES, PASS_SHARE, MAJOR_SOURCE } = READINESS_RULE;
  const summary = evidenceSummary(evidence);
  const major = evidence.failingSources.filter((s) => s.messages >= evidence.messages * MAJOR_SOURCE);
  let reason: string | undefined;
  if (evidence.messages < MIN_MESSAGES) reason = `only ${count(evidence.messages)} messages reported, too few to judge (at least ${MIN_MESSAGES})`;
  else if (evidence.relaySignedFailing.messages > 0) {
    const where = evidence.relaySignedFailing.breakages
      .map((b) => `${b.client ? `client ${b.client}'s ` : ''}s=${b.selector} at ${b.receiver} ×${count(b.messages)}`)
      .join(', ');
    reason = `${count(evidence.relaySignedFailing.messages)} messages signed by this relay failed DKIM at a receiver (${where}): something alters them in transit`;
  } else if (evidence.passShare < PASS_SHARE) reason = `${percent(evidence.passShare)} passed, below ${percent(PASS_SHARE)}: bring in the failing sources`;
  else if (major.length > 0) {
    reason = `${major.map((s) => s.sourceIp).join(', ')} send${major.length === 1 ? 's' : ''} ${percent(MAJOR_SOURCE)} or more of the mail and fail${major.length === 1 ? 's' : ''}: bring ${major.length === 1 ? 'it' : 'them'} in, or confirm ${major.length === 1 ? 'it is' : 'they are'} not yours`;
  }
  if (reason) return { state: 'not-yet', reason, line: `${summary} — not yet: ${reason}` };
  return { state: 'ready', policy: 'quarantine', line: `${summary} — ready for p=quarantine` };
}

/** "over the last 14 days, 99.7 % of 48,210 messages passed; these 3 sources failed: 203.0.113.5 (7, DKIM d=x not aligned, SPF not aligned), …" */
export function evidenceSummary(e: ReceiverEvidence, shown = 3): string {
  const head = `over the last ${e.days} days, ${percent(e.passShare)} of ${count(e.messages)} messages passed`;
  const n = e.failingSources.length;
  if (n === 0) return `${head}; no source failed`;
  const listed = e.failingSources.slice(0, shown).map((s) => `${s.sourceIp} (${count(s.messages)}: ${s.why.join(', ')})`);
  if (n > shown) listed.push(`and ${n - shown} more`);
  return `${head}; ${n === 1 ? 'this source' : `these ${n} sources`} failed: ${listed.join(', ')}`;
}

export function percent(share: number): string {
  return `${(Math.floor(share * 1000) / 10).toFixed(1)} %`;
}

export function count(n: number): string {
  return n.toLocaleString('en-US');
}
