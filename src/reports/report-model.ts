// One DMARC aggregate report, whichever schema it came in: RFC 7489 appendix C
// or the DMARCbis aggregate format (RFC 9990), which adds np, testing,
// discovery_method and generator, and drops pct. Fields absent from the
// report's schema are undefined.

export type ReportFormat = 'rfc7489' | 'dmarcbis';

/** RFC 7489 §6.3 / RFC 9990 §2.1: the published policy the receiver applied. */
export interface PolicyPublished {
  domain: string;
  adkim?: string;
  aspf?: string;
  p: string;
  sp?: string;
  /** DMARCbis: the policy for non-existent subdomains. */
  np?: string;
  /** RFC 7489 only. */
  pct?: number;
  fo?: string;
  /** DMARCbis: t=y, the policy is being tested. */
  testing?: string;
  /** DMARCbis: psl or treewalk. */
  discoveryMethod?: string;
}

export interface DkimResult {
  domain: string;
  selector?: string;
  result: string;
}

export interface SpfResult {
  domain: string;
  scope?: string;
  result: string;
}

/** One <record>: messages from one source with one set of results. */
export interface ReportRecord {
  sourceIp: string;
  count: number;
  disposition: string;
  /** DMARC's view: the aligned DKIM and SPF results (pass or fail). */
  dkimAligned: string;
  spfAligned: string;
  reasons: { type: string; comment?: string }[];
  headerFrom: string;
  envelopeFrom?: string;
  envelopeTo?: string;
  dkim: DkimResult[];
  spf: SpfResult[];
}

export interface AggregateReport {
  format: ReportFormat;
  orgName: string;
  email: string;
  extraContactInfo?: string;
  reportId: string;
  /** DMARCbis: the software that made the report. */
  generator?: string;
  /** Seconds since 1970, as in the report. */
  begin: number;
  end: number;
  errors: string[];
  policy: PolicyPublished;
  records: ReportRecord[];
}

/** Whether DMARC passed for a record: aligned DKIM or aligned SPF (RFC 7489 §6.6.2). */
export function dmarcPassed(record: Pick<ReportRecord, 'dkimAligned' | 'spfAligned'>): boolean {
  return record.dkimAligned === 'pass' || record.spfAligned === 'pass';
}

/** A step that either gives its value or refuses, with one line saying why. */
export type Checked<T> = { ok: true; value: T } | { ok: false; reason: string };

export const refused = (reason: string): { ok: false; reason: string } => ({ ok: false, reason });
