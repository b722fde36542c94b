// Where a signing domain stands for DMARC (RFC 7489): its SPF and DMARC
// records read and explained in plain words. Pure: the records are fetched
// elsewhere and passed in.
import { finding, type Finding } from './finding.ts';
import { countSpfLookups, isSpf, SPF_LOOKUP_LIMIT, spfTerms } from './spf.ts';
import { parseTagList } from './tag-list.ts';

export interface ReadinessInput {
  domain: string;
  /** TXT records at the domain (all of them; the SPF ones are picked here). */
  domainTxt: string[];
  /** Where the DMARC record was looked for and what TXT records were there: the domain first, then its organisational domain. */
  dmarc: { name: string; txt: string[] } | null;
  /** SPF records of included and redirected domains, fetched recursively. */
  spfIncludes: ReadonlyMap<string, string>;
}

export interface DomainReadiness {
  spf: string | null;
  dmarc: string | null;
  findings: Finding[];
}

export function isDmarc(txt: string): boolean {
  return /^v\s*=\s*DMARC1\s*(;|$)/i.test(txt.trim());
}

export function readiness(input: ReadinessInput): DomainReadiness {
  const spfRecords = input.domainTxt.filter(isSpf);
  const dmarcRecords = (input.dmarc?.txt ?? []).filter(isDmarc);
  return {
    spf: spfRecords[0] ?? null,
    dmarc: dmarcRecords[0] ?? null,
    findings: [...spfFindings(input, spfRecords), ...dmarcFindings(input, dmarcRecords)],
  };
}

function spfFindings(input: ReadinessInput, records: string[]): Finding[] {
  if (records.length === 0) {
    return [
      finding(
        'warn',
        'spf-missing',
        `${input.domain} has no SPF record: DMARC then rests on DKIM alone`,
        `publish "v=spf1 <your senders> -all" at ${input.domain}`,
      ),
    ];
  }
  if (records.length > 1) {
    return [
      finding(
        'fail',
        'spf-multiple',
        `${input.domain} has ${records.length} SPF records: receivers treat that as an error (RFC 7208 §4.5)`,
        'merge them into one record',
      ),
    ];
  }
  const out: Finding[] = [];
  const record = records[0]!;
  const terms = spfTerms(record);
  if (terms.all === '+') {
    out.push(
      finding(
        'fail',
        'spf-plus-all',
        'SPF ends in +all: anyone anywhere passes SPF as this domain',
        'end the record with -all (or ~all while you check your senders)',
      ),
    );
  } else if (terms.all !== '-' && terms.all !== '~' && terms.redirect === undefined) {
    out.push(
      finding(
        'warn',
        'spf-no-all',
        `SPF ends without -all or ~all${terms.all === '?' ? ' (?all is neutral)' : ''}: mail from other servers is not marked as failing`,
        'end the record with -all (or ~all while you check your senders)',
      ),
    );
  }
  const lookups = countSpfLookups(record, input.spfIncludes);
  if (lookups > SPF_LOOKUP_LIMIT) {
    out.push(
      finding(
        'fail',
        'spf-lookups',
        `SPF needs ${lookups} DNS lookups (include, a, mx, ptr, exists, redirect, counted through includes); receivers stop at ${SPF_LOOKUP_LIMIT} and SPF fails (permerror)`,
        'remove includes you do not use, or replace some by ip4:/ip6: ranges',
      ),
    );
  }
  return out;
}

function dmarcFindings(input: ReadinessInput, records: string[]): Finding[] {
  if (records.length === 0) {
    return [
      finding(
        'warn',
        'dmarc-missing',
        'no DMARC record: receivers apply no policy',
        `publish p=none with rua= to start collecting reports, e.g. _dmarc.${input.domain} TXT "v=DMARC1; p=none; rua=mailto:dmarc@${input.domain}"`,
      ),
    ];
  }
  const where = input.dmarc!.name;
  if (records.length > 1) {
    return [finding('fail', 'dmarc-multiple', `${records.length} DMARC records at ${where}: receivers ignore them all (RFC 7489 §6.6.3)`, 'keep exactly one')];
  }
  const parsed = parseTagList(records[0]!);
  if (!parsed.ok)
    return [
      finding('fail', 'dmarc-syntax', `the DMARC record at ${where} does not parse: ${parsed.problem}`, 'fix its syntax: "v=DMARC1; p=none; rua=mailto:…"'),
    ];
  const tags = parsed.tags;
  // The organisational domain's record governs subdomains through sp= (RFC 7489 §6.6.3).
  const inherited = where !== `_dmarc.${input.domain}`;
  const policy = ((inherited ? tags.get('sp') : undefined) ?? tags.get('p') ?? '').toLowerCase();
  const out: Finding[] = [];
  const from = inherited ? ` (from ${where})` : '';
  if (policy === 'none') {
    out.push(
      finding(
        'info',
        'dmarc-none',
        `p=none${from}: reports only, receivers do not act on failing mail`,
        'move to p=quarantine when the reports show all your mail passing',
      ),
    );
  } else if (policy === 'quarantine' || policy === 'reject') {
    const pct = Number(tags.get('pct') ?? '100');
    if (pct < 100) {
      out.push(
        finding(
          'advice',
          'dmarc-pct',
          `p=${policy} pct=${pct}${from}: the policy applies to ${pct}% of failing mail only`,
          'raise pct to 100 when the reports show all your mail passing',
        ),
      );
    } else {
      out.push(finding('info', 'dmarc-enforced', `p=${policy}${from}: receivers ${policy === 'reject' ? 'refuse' : 'put in spam'} mail that fails DMARC`));
    }
  } else {
    return [
      finding(
        'fail',
        'dmarc-policy',
        `the DMARC record at ${where} has no valid p= (none, quarantine or reject)`,
        'start with "v=DMARC1; p=none; rua=mailto:…"',
      ),
    ];
  }
  if (!tags.has('rua')) {
    out.push(
      finding(
        'warn',
        'dmarc-no-rua',
        `no rua= at ${where}: you receive no aggregate reports, so you cannot see what fails`,
        'add rua=mailto:<an address that collects reports>',
      ),
    );
  }
  if ((tags.get('adkim') ?? 'r').toLowerCase() === 's') {
    out.push(
      finding(
        'warn',
        'dmarc-adkim-strict',
        `adkim=s${from}: mail from a subdomain (e.g. mail.${input.domain}) that the relay signs as d=${input.domain} fails DMARC`,
        'use adkim=r (the default), or give each From: subdomain its own key',
      ),
    );
  }
  return out;
}
