// `reports`: what receivers' DMARC aggregate reports say about each signing
// domain, and `reports import` to add report files or saved messages. The
// running relay adds the reports of reports.imap by itself.
import type { Argv } from 'yargs';
import { importContext, importFile, resultLine } from '../reports/import.ts';
import { openReportStore } from '../reports/open-report-store.ts';
import { relayKeysOf, summarise } from '../reports/summary.ts';
import { renderSummary } from '../reports/summary-text.ts';
import { CheckFailed, print, printJson, withStore, type GlobalArgs } from './context.ts';

type Args = GlobalArgs & { files?: string[]; domain?: string; days: number };

export function reportsCommand(yargs: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return yargs.command('reports', 'DMARC aggregate reports: per domain, what passed, from which sources, signed how', (y) =>
    y
      .command<Args>(
        'import <files..>',
        'add report files (.xml, .xml.gz, .zip) or saved messages (.eml) that carry one; the same report twice is kept once',
        (c) =>
          c
            .positional('files', { type: 'string', array: true, describe: 'report files or saved messages' })
            .example('$0 reports import google.com!example.com!1700000000!1700086400.xml.gz', 'one report'),
        (args) =>
          withStore(args, async (store, { config }) => {
            const reports = await openReportStore(store);
            try {
              const ctx = importContext(reports, store, config.reports);
              const results = [];
              for (const file of args.files ?? []) results.push({ file, ...(await importFile(file, ctx)) });
              if (args.json) printJson(results);
              else for (const r of results) print(resultLine(r.file, r));
              const refused = results.filter((r) => r.status === 'refused').length;
              if (refused > 0) throw new CheckFailed(`${refused} of ${results.length} file(s) refused (see above)`);
            } finally {
              await reports.close();
            }
          }),
      )
      .command<Args>(
        '$0',
        'per domain: messages and the share that passed DMARC; per source, DKIM alignment and the d=/s= seen; mail of this relay failing DKIM; mail not signed by it',
        (c) =>
          c
            .option('domain', { type: 'string', describe: 'only this domain' })
            .option('days', { type: 'number', default: 30, describe: 'reports whose period ended in the last N days' })
            .check((a) => (Number.isInteger(a.days) && a.days > 0 ? true : '--days must be a whole number above 0'))
            .example('$0 reports --domain example.com', 'evidence for p=reject'),
        (args) =>
          withStore(args, async (store) => {
            const reports = await openReportStore(store, 'read-only');
            try {
              const since = Math.floor(Date.now() / 1000) - args.days * 86_400;
              const domain = args.domain?.trim().replace(/\.$/, '').toLowerCase();
              const relayKeys = relayKeysOf(store.list());
              const summary = summarise(await reports.records(since, domain), await reports.reportCounts(since, domain), relayKeys);
              if (args.json) printJson({ days: args.days, domains: summary });
              else print(renderSummary(summary, args.days));
            } finally {
              await reports.close();
            }
          }),
      ),
  );
}
