// What an aggregate report must hold before it is stored: the fields that
// identify it (RFC 7489 appendix C: org_name, report_id, date_range,
// policy_published/domain) and, in each record, a source address and a count.
// The first problem found is the reason the report is refused.
import { isIP } from 'node:net';
import { isValidDomain } from '../common/names.ts';
import type { AggregateReport, Checked } from './report-model.ts';
import { refused } from './report-model.ts';

/** More records than any receiver sends for one domain and day; a bound on what one report may store. */
export const MAX_RECORDS = 100_000;

/** Longest org_name or report_id kept. */
const MAX_ID = 512;

const RESULTS = new Set(['pass', 'fail']);

export function validateReport(report: AggregateReport): Checked<AggregateReport> {
  if (report.orgName === '' || report.orgName.length > MAX_ID) return refused('report_metadata/org_name is missing or too long');
  if (report.reportId === '' || report.reportId.length > MAX_ID) return refused('report_metadata/report_id is missing or too long');
  if (!Number.isSafeInteger(report.begin) || !Number.isSafeInteger(report.end) || report.begin > report.end) {
    return refused('report_metadata/date_range needs begin and end in seconds since 1970, begin not after end');
  }
  if (!isValidDomain(report.policy.domain)) return refused(`policy_published/domain "${report.policy.domain}" is not a domain name`);
  if (report.records.length === 0) return refused('the report has no <record>');
  if (report.records.length > MAX_RECORDS) return refused(`the report has ${report.records.length} records, more than ${MAX_RECORDS}`);
  for (const [i, r] of report.records.entries()) {
    const where = `record ${i + 1}`;
    if (isIP(r.sourceIp) === 0) return refused(`${where}: source_ip "${r.sourceIp}" is not an IP address`);
    if (!Number.isSafeInteger(r.count)) return refused(`${where}: count is not a whole number`);
    if (!RESULTS.has(r.dkimAligned) || !RESULTS.has(r.spfAligned)) return refused(`${where}: policy_evaluated needs dkim and spf of pass or fail`);
    if (r.headerFrom === '') return refused(`${where}: identifiers/header_from is missing`);
  }
  return { ok: true, value: report };
}
