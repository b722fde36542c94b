// The per-domain summary as `dkim-relay reports` prints it for people.
import type { DomainSummary, SourceSummary } from './summary.ts';

/** Sources listed per section; the JSON output has them all. */
const SHOWN = 20;

export function renderSummary(domains: readonly DomainSummary[], days: number): string {
  if (domains.length === 0)
    return `no DMARC aggregate reports for the last ${days} days (add some with: dkim-relay reports import FILE..., or set reports.imap)`;
  return domains.map((d) => renderDomain(d, days)).join('\n\n');
}

function renderDomain(d: DomainSummary, days: number): string {
  const lines = [
    `${d.domain}: ${d.messages} messages in ${d.reports} report(s) of the last ${days} days; ${d.dmarcPass} (${percent(d.passShare)}) passed DMARC`,
    '  sources:',
    ...sourceLines(d.sources),
    `  signed with this relay's keys but failing DKIM at the receiver (broken in transit): ${d.relaySignedFailing.messages} messages`,
    ...sourceLines(d.relaySignedFailing.sources),
    `  not signed with this relay's keys (sources still to bring in): ${d.notRelaySigned.messages} messages`,
    ...sourceLines(d.notRelaySigned.sources),
  ];
  return lines.join('\n');
}

function sourceLines(sources: readonly SourceSummary[]): string[] {
  const shown = sources.slice(0, SHOWN).map((s) => {
    const signatures =
      s.signatures.map((g) => `d=${g.domain} s=${g.selector ?? '-'}${g.client ? ` (client ${g.client})` : ''} ${g.result} ×${g.messages}`).join(', ') ||
      'no DKIM signature';
    return `    ${s.sourceIp}  ${s.messages} messages, ${s.dmarcPass} passed DMARC, ${s.dkimAligned} DKIM aligned; ${signatures}`;
  });
  if (sources.length > SHOWN) shown.push(`    … and ${sources.length - SHOWN} more sources (see --json)`);
  return shown;
}

function percent(share: number): string {
  return `${(share * 100).toFixed(1)}%`;
}
