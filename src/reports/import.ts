// One report in, from the octets of a file or a fetched message: unpacked,
// parsed, checked, matched against the domains the relay signs, stored once,
// and old reports pruned. Whatever is wrong with the report itself is a
// refusal with its reason, never an exception; only the database failing
// throws (that is the relay's problem, and the report is tried again).
import { openSync, closeSync, fstatSync, readSync } from 'node:fs';
import type { Config } from '../config/schema.ts';
import type { KeyStore } from '../keys/key-store.ts';
import type { ReportStore } from './report-store.ts';
import { parseReportXml } from './report-xml.ts';
import { unpackReport } from './unpack.ts';
import { validateReport } from './validation.ts';

export interface ImportSettings {
  /** reports.maxBytes: the most octets read, stored or inflated for one report. */
  maxBytes: number;
  /** reports.keepDays. */
  keepDays: number;
}

export interface ImportContext extends ImportSettings {
  reports: ReportStore;
  /** The domains the relay holds keys for, lower-case. */
  signingDomains: () => ReadonlySet<string>;
  now?: () => number;
}

export type ImportResult =
  | { status: 'imported' | 'duplicate'; domain: string; orgName: string; reportId: string; records: number; messages: number }
  | { status: 'ignored'; domain: string; orgName: string; reportId: string; reason: string }
  | { status: 'refused'; reason: string };

/** The context the CLI and the relay import with: reports.* settings, and the key store's domains (removed keys aside). */
export function importContext(reports: ReportStore, store: Pick<KeyStore, 'list'>, settings: Config['reports'], now?: () => number): ImportContext {
  return {
    reports,
    maxBytes: settings.maxBytes,
    keepDays: settings.keepDays,
    signingDomains: () =>
      new Set(
        store
          .list()
          .filter((k) => k.state !== 'removed')
          .map((k) => k.domain),
      ),
    ...(now ? { now } : {}),
  };
}

export async function importReport(data: Buffer, ctx: ImportContext, declaredType?: string): Promise<ImportResult> {
  const now = (ctx.now ?? Date.now)();
  let checked;
  try {
    const xml = await unpackReport(data, ctx.maxBytes, declaredType);
    if (!xml.ok) return { status: 'refused', reason: xml.reason };
    const parsed = parseReportXml(xml.value);
    if (!parsed.ok) return { status: 'refused', reason: parsed.reason };
    checked = validateReport(parsed.value);
    if (!checked.ok) return { status: 'refused', reason: checked.reason };
  } catch (err) {
    // A reader's own failure on hostile input is still only this report's problem.
    return { status: 'refused', reason: `unreadable: ${(err as Error).message}` };
  }
  const report = checked.value;
  const { domain } = report.policy;
  const ids = { domain, orgName: report.orgName, reportId: report.reportId };
  if (!covers(ctx.signingDomains(), domain)) return { status: 'ignored', ...ids, reason: `the relay holds no key for ${domain}` };
  const status = await ctx.reports.add(report, now);
  await ctx.reports.prune(now, ctx.keepDays);
  return { status, ...ids, records: report.records.length, messages: report.records.reduce((n, r) => n + r.count, 0) };
}

/**
 * A report file: a report, compressed or not, or a saved message. Its size is
 * looked at before it is read, so a huge file is refused unread.
 */
export async function importFile(file: string, ctx: ImportContext): Promise<ImportResult> {
  let data: Buffer;
  try {
    const fd = openSync(file, 'r');
    try {
      const size = fstatSync(fd).size;
      if (size > ctx.maxBytes) return { status: 'refused', reason: `${size} octets, more than ${ctx.maxBytes} (reports.maxBytes); refused before reading` };
      data = Buffer.alloc(size);
      let at = 0;
      while (at < size) {
        const n = readSync(fd, data, at, size - at, at);
        if (n === 0) break;
        at += n;
      }
      data = data.subarray(0, at);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    return { status: 'refused', reason: `cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` };
  }
  return importReport(data, ctx);
}

/**
 * A report is of interest when it is about a signing domain, or about the
 * organizational domain above one: DMARC looks the policy up there when the
 * signing domain has none of its own (RFC 7489 §6.6.3).
 */
export function covers(signing: ReadonlySet<string>, domain: string): boolean {
  for (const d of signing) if (d === domain || d.endsWith(`.${domain}`)) return true;
  return false;
}

/** One line for a result, as the CLI prints it and the relay logs it. */
export function resultLine(source: string, r: ImportResult): string {
  switch (r.status) {
    case 'imported':
      return `${source}: imported report ${r.reportId} from ${r.orgName} for ${r.domain}: ${r.records} records, ${r.messages} messages`;
    case 'duplicate':
      return `${source}: report ${r.reportId} from ${r.orgName} for ${r.domain} was imported before; nothing changed`;
    case 'ignored':
      return `${source}: report ${r.reportId} from ${r.orgName} ignored: ${r.reason}`;
    case 'refused':
      return `${source}: refused: ${r.reason}`;
  }
}
