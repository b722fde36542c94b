// `status`: what needs looking at this morning. Reads the key store (so it
// works whether or not the relay runs), plans each key's next step, shows
// what DNS served at the last check, looks up each domain's SPF and DMARC
// live unless --no-dns, and shows the relay's background tasks that failed
// since it started, as it recorded them in queue.dir, and what receivers'
// DMARC aggregate reports of the last reports.windowDays days say about
// moving each domain to p=quarantine. Exit 1 when something needs a person.
import type { Argv } from 'yargs';
import type { LoadedConfig } from '../config/load.ts';
import { configuredNameservers, parseNameserver, type Nameserver } from '../dns/nameserver.ts';
import { lookUpReadiness } from '../dns/readiness-lookup.ts';
import { openKeyStore } from '../keys/open-store.ts';
import { fleetAttention } from '../observability/fleet-status.ts';
import { renderStatus, type StatusReport } from '../observability/status-report.ts';
import { gatherStatus, reportedDomains } from '../observability/status-sources.ts';
import { readTaskHealth } from '../common/task-health-file.ts';
import { readEvidence } from '../reports/evidence.ts';
import { openReportStore } from '../reports/open-report-store.ts';
import { CheckFailed, configFrom, print, printJson, warnIfWasExposed, type GlobalArgs } from './context.ts';
import { UserError } from '../common/errors.ts';
import { normalizeClientName } from '../common/names.ts';

type Args = GlobalArgs & { dns: boolean; nameserver?: string[]; client?: string };

export function statusCommand(yargs: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return yargs.command<Args>(
    'status',
    "each domain: its keys and their next step, the last DNS check, DMARC readiness with the receivers' reports as evidence, and what needs a person (exit 1)",
    (y) =>
      y
        .option('dns', { type: 'boolean', default: true, describe: 'look up SPF and DMARC live (--no-dns: only what the key store knows)' })
        .option('nameserver', {
          type: 'string',
          array: true,
          describe: 'ask this server for SPF and DMARC, IP[:PORT] (default: dns.resolvers, else the system resolver)',
        })
        .option('client', { type: 'string', describe: "only the keys of this client's own chain (clients[].name), in every domain" })
        .example('$0 status', 'the morning look')
        .example('$0 status --client scanner', "the scanner's keys and what needs doing about them")
        .example('$0 status --json --no-dns', 'for monitoring, without touching DNS'),
    async (args) => {
      const named = (args.nameserver ?? []).map(parseNameserver); // a bogus address is a usage error before anything else
      const loaded = configFrom(args);
      const full = await gather(loaded, args.dns, named);
      const report = args.client === undefined ? full : onlyChain(full, normalizeClientName(args.client));
      if (args.json) printJson(report);
      else print(renderStatus(report));
      const attention = report.domains.flatMap((d) => d.attention);
      const failing = (report.background ?? []).filter((t) => t.state === 'failing').map((t) => t.task);
      const fleet = report.fleet ? fleetAttention(report.fleet) : 0;
      if (attention.length + failing.length + fleet > 0) {
        const what = [...new Set(attention.map((a) => a.domain)), ...failing.map((task) => `background task ${task}`), ...(fleet > 0 ? ['the fleet'] : [])];
        throw new CheckFailed(`${attention.length + failing.length + fleet} thing(s) need a person: ${what.join(', ')} (see above)`);
      }
    },
  );
}

/** The report cut to one client's chain: its keys, and what needs a person about them. */
function onlyChain(report: StatusReport, client: string): StatusReport {
  const domains = report.domains
    .map((d) => {
      const keys = d.keys.filter((k) => k.client === client);
      const selectors = new Set(keys.map((k) => k.selector));
      return { ...d, keys, client, attention: d.attention.filter((a) => a.selector !== null && selectors.has(a.selector)) };
    })
    .filter((d) => d.keys.length > 0);
  if (domains.length === 0)
    throw new UserError(`no keys for client ${client}`, `generate one: dkim-relay keys generate --domain example.com --client ${client}`);
  const othersOk = !(report.background ?? []).some((t) => t.state === 'failing') && (!report.fleet || fleetAttention(report.fleet) === 0);
  return { ...report, domains, ok: othersOk && domains.every((d) => d.attention.length === 0) };
}

async function gather(loaded: LoadedConfig, dns: boolean, named: Nameserver[]): Promise<StatusReport> {
  const { config } = loaded;
  const store = await openKeyStore(config.keys, { create: false, refreshMs: 0 });
  warnIfWasExposed(store, config.keys.dir);
  try {
    const domains = reportedDomains(store.list());
    const readiness = dns
      ? await lookUpReadiness(domains, named.length > 0 ? named : configuredNameservers(config.dns.resolvers), config.dns.timeoutSeconds)
      : new Map();
    const now = new Date();
    const days = config.reports.windowDays;
    const reports = await openReportStore(store, 'read-only');
    const receivers = { days, evidence: await readEvidence(reports, store, days, now.getTime()).finally(() => reports.close()) };
    return gatherStatus({ config, store, now, readiness, background: readTaskHealth(config.queue.dir)?.tasks ?? [], receivers }).report;
  } finally {
    await store.close();
  }
}
