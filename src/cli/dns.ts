// `dns check`: what DNS really serves for each key, linted, and each signing
// domain's SPF and DMARC explained. Exit 1 when a record that must be
// published is not (missing, mismatch, malformed, or no answer).
import type { Argv } from 'yargs';
import { authoritativeServers } from '../dns/authoritative.ts';
import { DnsClient } from '../dns/dns-client.ts';
import { delegationFor } from '../dns/delegation.ts';
import { checkDns, type CheckReport, type DomainReport, type KeyReport } from '../dns/dns-check.ts';
import type { Finding } from '../dns/finding.ts';
import { FAILING } from '../dns/key-status.ts';
import { configuredNameservers, parseNameserver, type Nameserver } from '../dns/nameserver.ts';
import { UserError } from '../common/errors.ts';
import { CheckFailed, print, printJson, withStore, type GlobalArgs } from './context.ts';

type Args = GlobalArgs & { domain?: string; nameserver?: string[]; authoritative?: boolean };

export function dnsCommand(yargs: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return yargs
    .command<Args>(
      'check',
      'resolve every published selector (and SPF, DMARC) and report match / missing / mismatch / malformed, with lint',
      (y) =>
        y
          .option('domain', { type: 'string', describe: 'check only this signing domain' })
          .option('nameserver', {
            type: 'string',
            array: true,
            describe: 'ask this server, IP[:PORT]; repeat to compare several (default: dns.resolvers, else the system resolver)',
          })
          .option('authoritative', { type: 'boolean', default: false, describe: "ask each domain's own authoritative servers (found through the resolver)" })
          .example('$0 dns check', 'through the system resolver')
          .example('$0 dns check --nameserver 192.0.2.53 --nameserver 198.51.100.53', 'compare two servers')
          .example('$0 dns check --authoritative --json', 'straight from the zone, for monitoring'),
      async (args) => {
        const named = (args.nameserver ?? []).map(parseNameserver); // a bogus address is a usage error before anything else
        await withStore(args, async (store, loaded) => {
          const settings = loaded.config.dns;
          const resolvers = named.length > 0 ? named : configuredNameservers(settings.resolvers);
          if (resolvers.length === 0) throw new UserError('no DNS server to ask', 'name one with --nameserver IP[:PORT] or dns.resolvers');
          const keys = store.list(args.domain);
          if (args.domain && keys.length === 0) throw new UserError(`no keys for ${args.domain}`, 'see `dkim-relay keys list`');
          const client = new DnsClient({ timeoutMs: settings.timeoutSeconds * 1000 });
          const report = await checkDns({
            keys,
            client,
            serversFor: args.authoritative ? authoritativeFinder(resolvers[0]!, client) : async () => resolvers,
            delegation: (domain) => delegationFor(settings.delegation, domain),
          });
          if (args.json) printJson(report);
          else print(render(report));
          if (!report.ok) {
            const failing = report.domains.flatMap((d) => d.keys).filter((k) => FAILING.includes(k.status));
            throw new CheckFailed(`${failing.length} record(s) not published as they must be: ${failing.map((k) => `${k.name} ${k.status}`).join(', ')}`);
          }
        });
      },
    )
    .demandCommand(1, 'name a dns command: check');
}

function authoritativeFinder(via: Nameserver, client: DnsClient): (domain: string) => Promise<Nameserver[]> {
  return async (domain) => {
    const found = await authoritativeServers(domain, via, client);
    if (!found.ok) throw new CheckFailed(`cannot find the authoritative servers of ${domain}: ${found.reason}`);
    return found.servers;
  };
}

export function render(report: CheckReport): string {
  if (report.domains.length === 0) return 'no keys to check: dkim-relay keys generate --domain example.com';
  return report.domains.map(renderDomain).join('\n\n');
}

function renderDomain(domain: DomainReport): string {
  const lines = [`${domain.domain}  (asked ${domain.servers.join(', ')})`];
  for (const key of domain.keys) lines.push(...renderKey(key, domain.servers.length > 1));
  const r = domain.readiness;
  lines.push(`  DMARC readiness  (as ${r.server} sees it)`);
  if ('temperror' in r) {
    lines.push(`    fail    temperror: ${r.temperror}`);
  } else {
    lines.push(`    SPF     ${r.spf ?? '(none)'}`, `    DMARC   ${r.dmarc ?? '(none)'}`);
    lines.push(...r.findings.map((f) => findingLine(f, '    ')));
  }
  return lines.join('\n');
}

function renderKey(key: KeyReport, several: boolean): string[] {
  const only = key.servers[0];
  const lines = [`  ${key.name}  ${key.state}  ${key.status}${!several && only ? how(only) : ''}`];
  for (const result of key.servers) {
    if (several) lines.push(`    ${result.server}  ${result.status}${how(result)}`);
    lines.push(...result.findings.map((f) => findingLine(f, several ? '      ' : '    ')));
  }
  if (key.disagreement) lines.push(`    warn    disagree: ${key.disagreement}`);
  return lines;
}

function how(result: KeyReport['servers'][number]): string {
  const parts = [result.transport, result.ttl === undefined ? undefined : `ttl ${result.ttl}`];
  if (result.chain && result.chain.length > 1) parts.push(`via CNAME ${result.chain.slice(1).join(' -> ')}`);
  const shown = parts.filter((p) => p !== undefined);
  return shown.length > 0 ? `  [${shown.join(', ')}]` : '';
}

function findingLine(f: Finding, indent: string): string {
  return `${indent}${f.level.padEnd(7)} ${f.code}: ${f.message}${f.fix ? ` — ${f.fix}` : ''}`;
}
