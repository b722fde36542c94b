// What `dkim-relay status` reports: per signing domain, its keys with their
// age and next lifecycle step, what DNS served at the last check of each
// selector, the domain's DMARC readiness, and what needs a person. Pure: the
// keys, observations and DNS answers are read elsewhere (status-sources.ts)
// and passed in, and the clock is injected.
//
// The report is also the `--json` shape, kept stable for monitoring: fields
// are only ever added.
import type { Finding } from '../dns/finding.ts';
import type { ReadinessResult } from '../dns/readiness-lookup.ts';
import type { TaskHealth } from '../common/background-tasks.ts';
import type { KeyState } from '../keys/lifecycle.ts';
import type { DnsObservation } from '../rotation/observation.ts';
import { plan, when, type Action, type PlanKey, type StepName } from '../rotation/plan.ts';
import type { RotationPolicy } from '../rotation/policy.ts';
import { dmarcVerdict, type DmarcVerdict, type ReceiverEvidence } from './receiver-evidence.ts';
import { fleetAttention, renderFleet, type FleetStatus } from './fleet-status.ts';

/** An active key whose private key file cannot be used (its domain's mail waits). */
export interface KeyFileProblem {
  domain: string;
  selector: string;
  line: string;
}

/** Where a key's private half lives; a token key by its RFC 7512 URI (label and CKA_ID, never the PIN). */
export type KeyHome = { kind: 'file'; path: string } | { kind: 'sealed' } | { kind: 'pkcs11'; token: string; uri: string };

export interface StatusInput {
  now: Date;
  /** Where each key lives, by key id; a key not in the map is shown without it. */
  homes?: ReadonlyMap<number, KeyHome>;
  /** Every key of the store, removed ones included (the planner needs them; they are not shown). */
  keys: readonly PlanKey[];
  observations: readonly DnsObservation[];
  policy: (domain: string) => RotationPolicy;
  /** The DNS servers that must serve a domain's records. */
  servers: (domain: string) => readonly string[];
  /** Per domain; a domain not in the map was not checked. */
  readiness: ReadonlyMap<string, ReadinessResult>;
  keyProblems?: readonly KeyFileProblem[];
  /** The running relay's background tasks that failed since it started; a failing one needs a person. */
  background?: readonly TaskHealth[];
  /** With a shared PostgreSQL store: the relays of the fleet. */
  fleet?: FleetStatus;
  /** What receivers' aggregate reports say, per domain, over the window; absent: not read. */
  receivers?: ReceiversInput;
}

export interface ReceiversInput {
  days: number;
  evidence: ReadonlyMap<string, ReceiverEvidence>;
}

/** A domain's aggregate reports over the window, and whether they support p=quarantine. */
export interface ReceiversStatus {
  days: number;
  /** null: no report in the window. */
  evidence: ReceiverEvidence | null;
  verdict: DmarcVerdict;
}

export interface ServerObservation {
  server: string;
  state: DnsObservation['lastState'];
  detail: string;
  lastChecked: string;
  firstSeenMatching: string | null;
}

export interface KeyStatus {
  selector: string;
  /** The client whose own chain the key is in (clients[].name); null: the domain's chain. */
  client: string | null;
  algorithm: string;
  bits: number;
  state: Exclude<KeyState, 'removed'>;
  /** When the key entered its state (created, activated, retired, revoked). */
  since: string;
  /** Seconds in that state. */
  ageSeconds: number;
  /** null: nothing is planned (e.g. an active key without rotation.interval). */
  next: { step: StepName; at: string | null; due: boolean; text: string } | null;
  dns: { lastChecked: string | null; servers: ServerObservation[] };
  /** Where its private half lives. */
  home?: KeyHome;
}

export type AttentionCode = 'stuck-pending' | 'record-lost' | 'key-unusable';

export interface Attention {
  code: AttentionCode;
  domain: string;
  selector: string | null;
  message: string;
}

export interface DomainStatus {
  domain: string;
  /** Active, pending, retiring, revoked; oldest first within each. */
  keys: KeyStatus[];
  readiness: ReadinessResult;
  attention: Attention[];
  receivers?: ReceiversStatus;
  /** Set when the keys are one client's chain only (`status --client`). */
  client?: string;
}

export interface StatusReport {
  generatedAt: string;
  /** false when something needs a person (the command then exits 1). */
  ok: boolean;
  domains: DomainStatus[];
  /** Given by `status` and the status page: each background task that failed since the relay started. */
  background?: TaskHealth[];
  /** With a shared PostgreSQL store: the relays of the fleet; an outdated or silent one, or the store away, needs a person. */
  fleet?: FleetStatus;
}

const SHOWN_ORDER: Record<string, number> = { active: 0, pending: 1, retiring: 2, revoked: 3 };

export function statusReport(input: StatusInput): StatusReport {
  const now = input.now.getTime();
  // Every relay's queue as its heartbeat tells it (this relay's own included): what holds a revocation back.
  const peers = input.fleet?.nodes;
  const { actions, next } = plan({
    now: input.now,
    keys: input.keys,
    policy: input.policy,
    servers: input.servers,
    observations: input.observations,
    ...(peers ? { peers } : {}),
  });
  const domains = [...new Set(input.keys.filter((k) => k.state !== 'removed').map((k) => k.domain))].sort();

  const report = domains.map((domain): DomainStatus => {
    const shown = input.keys
      .filter((k) => k.domain === domain && k.state !== 'removed')
      .sort((a, b) => SHOWN_ORDER[a.state]! - SHOWN_ORDER[b.state]! || Date.parse(a.createdAt) - Date.parse(b.createdAt) || a.id - b.id);
    const keys = shown.map((key): KeyStatus => {
      const since = sinceOf(key);
      return {
        selector: key.selector,
        client: key.client ?? null,
        algorithm: key.algorithm,
        bits: key.bits,
        state: key.state as KeyStatus['state'],
        since,
        ageSeconds: Math.max(0, Math.floor((now - Date.parse(since)) / 1000)),
        next: nextStep(key.id, actions, next, input.now),
        dns: dnsOf(key.id, input.observations),
        ...(input.homes?.has(key.id) ? { home: input.homes.get(key.id)! } : {}),
      };
    });
    const readiness = input.readiness.get(domain) ?? { status: 'not-checked' };
    const receivers = input.receivers && receiversOf(domain, input.receivers);
    return { domain, keys, readiness, attention: attentionFor(domain, actions, input.keyProblems ?? []), ...(receivers ? { receivers } : {}) };
  });
  const background = input.background ? [...input.background] : undefined;
  const fleet = input.fleet;
  const ok = report.every((d) => d.attention.length === 0) && !background?.some((t) => t.state === 'failing') && (!fleet || fleetAttention(fleet) === 0);
  return { generatedAt: input.now.toISOString(), ok, domains: report, ...(background ? { background } : {}), ...(fleet ? { fleet } : {}) };
}

function receiversOf(domain: string, input: ReceiversInput): ReceiversStatus {
  const evidence = input.evidence.get(domain);
  return { days: input.days, evidence: evidence ?? null, verdict: dmarcVerdict(domain, input.days, evidence) };
}

function sinceOf(key: PlanKey): string {
  const at = { pending: key.createdAt, active: key.activatedAt, retiring: key.retiredAt, revoked: key.revokedAt, removed: key.removedAt }[key.state];
  return at ?? key.createdAt;
}

/** The planner's next step of a key, or the step due now (which the scheduler takes at its next check). */
function nextStep(keyId: number, actions: readonly Action[], next: ReturnType<typeof plan>['next'], now: Date): KeyStatus['next'] {
  const at = now.toISOString();
  for (const action of actions) {
    if (action.kind === 'create' && action.replaces === keyId) return { step: 'rotate', at, due: true, text: `rotation due: ${action.why}` };
    if ((action.kind === 'activate' || action.kind === 'revoke' || action.kind === 'remove') && action.keyId === keyId) {
      return { step: action.kind, at, due: true, text: `${action.kind} due: ${action.why}` };
    }
  }
  const step = next.find((n) => n.keyId === keyId);
  return step ? { step: step.step, at: step.at, due: false, text: step.text } : null;
}

function dnsOf(keyId: number, observations: readonly DnsObservation[]): KeyStatus['dns'] {
  const servers = observations
    .filter((o) => o.keyId === keyId)
    .sort((a, b) => (a.server < b.server ? -1 : a.server > b.server ? 1 : 0))
    .map((o) => ({ server: o.server, state: o.lastState, detail: o.detail, lastChecked: o.lastChecked, firstSeenMatching: o.firstSeenMatching }));
  const lastChecked = servers.reduce<string | null>(
    (latest, s) => (latest === null || Date.parse(s.lastChecked) > Date.parse(latest) ? s.lastChecked : latest),
    null,
  );
  return { lastChecked, servers };
}

/**
 * What a person must mend: keys the relay cannot sign with, pending keys DNS
 * has not served for stuckAfter, records DNS no longer serves. SPF and DMARC
 * findings are advice, as in `dns check`: the relay's mail passes DMARC by its
 * DKIM signature whatever SPF says.
 */
function attentionFor(domain: string, actions: readonly Action[], problems: readonly KeyFileProblem[]): Attention[] {
  const out: Attention[] = [];
  for (const p of problems.filter((p) => p.domain === domain)) {
    out.push({ code: 'key-unusable', domain, selector: p.selector, message: p.line });
  }
  for (const action of actions) {
    if (action.kind !== 'notify' || action.domain !== domain) continue;
    const code = action.notice.startsWith('stuck:') ? 'stuck-pending' : 'record-lost';
    out.push({ code, domain, selector: action.selector, message: action.why });
  }
  return out;
}

// ---- Human output ---------------------------------------------------------

export function renderStatus(report: StatusReport): string {
  const failing = (report.background ?? []).filter((t) => t.state === 'failing').length;
  const tasks = [...(report.background?.length ? [renderBackground(report.background)] : []), ...(report.fleet ? [renderFleet(report.fleet)] : [])];
  if (report.domains.length === 0) return ['no keys yet: dkim-relay keys generate --domain example.com', ...tasks].join('\n\n');
  const blocks = [...report.domains.map(renderDomain), ...tasks];
  const count = report.domains.reduce((n, d) => n + d.attention.length, 0) + failing + (report.fleet ? fleetAttention(report.fleet) : 0);
  blocks.push(count === 0 ? 'nothing needs attention' : `${count} thing${count === 1 ? '' : 's'} need${count === 1 ? 's' : ''} attention (marked !)`);
  return blocks.join('\n\n');
}

function renderDomain(domain: DomainStatus): string {
  const rows = domain.keys.map((k) => [
    k.state,
    k.client ? `${k.selector} (client ${k.client})` : k.selector,
    `${k.algorithm}${k.algorithm === 'rsa' ? ` ${k.bits}` : ''}`,
    `since ${when(k.since)} (${age(k.ageSeconds)})`,
  ]);
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
  const pad = (r: string[]) => r.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c)).join('  ');
  const indent = ' '.repeat(2 + widths[0]! + 2);
  const lines = [domain.domain];
  if (!domain.keys.some((k) => k.state === 'active'))
    lines.push(
      domain.client === undefined
        ? '  no active key: nothing signs for this domain yet'
        : `  no active key of client ${domain.client}: its mail follows its whenNoKey (the domain's keys, or signing.unknownDomain)`,
    );
  domain.keys.forEach((key, i) => {
    lines.push(`  ${pad(rows[i]!)}`);
    if (key.next) lines.push(`${indent}next: ${key.next.text}`);
    lines.push(`${indent}DNS:  ${dnsLine(key.dns)}`);
    if (key.home) lines.push(`${indent}key:  ${homeLine(key.home)}`);
  });
  lines.push(`  DMARC  ${readinessLines(domain.readiness).join(`\n         `)}`);
  if (domain.receivers) lines.push(`         reports: ${domain.receivers.verdict.line}`);
  for (const a of domain.attention) lines.push(`  ! ${a.message}`);
  return lines.join('\n');
}

function renderBackground(tasks: readonly TaskHealth[]): string {
  const lines = ['background tasks (failed since the relay started)'];
  for (const t of tasks) lines.push(`${t.state === 'failing' ? '! ' : '  '}${taskLine(t)}`);
  return lines.join('\n');
}

/** "rotation failing since …, 3 times: cause" — the status page shows the same words. */
export function taskLine(t: TaskHealth): string {
  const times = `${t.repeats} time${t.repeats === 1 ? '' : 's'}`;
  if (t.state === 'failing') return `${t.task} failing since ${when(t.since)}, ${times}: ${t.cause}`;
  return `${t.task} works again since ${when(t.recoveredAt!)}; it had failed ${times}: ${t.cause}`;
}

/** "file /var/lib/…pem", "PKCS#11 token dkim (pkcs11:token=dkim;id=%…)", "sealed in the database": the status page shows the same words. */
export function homeLine(home: KeyHome): string {
  if (home.kind === 'file') return `file ${home.path}`;
  if (home.kind === 'pkcs11') return `PKCS#11 token ${home.token} (${home.uri})`;
  return 'sealed in the database';
}

function dnsLine(dns: KeyStatus['dns']): string {
  if (dns.lastChecked === null) return 'never checked';
  const each = dns.servers.map((s) => `${s.server} ${s.state}${s.detail ? ` (${s.detail})` : ''}`);
  return `${each.join(', ')}; last checked ${when(dns.lastChecked)}`;
}

function readinessLines(r: ReadinessResult): string[] {
  if (r.status === 'not-checked') return ['not checked (--no-dns)'];
  if (r.status === 'failed') return [`DNS lookup failed: ${r.reason}`];
  // The DMARC finding first (what receivers do), then every SPF or DMARC problem.
  const dmarc = r.findings.find((f) => f.code.startsWith('dmarc-') && f.level === 'info') ?? r.findings.find((f) => f.code.startsWith('dmarc-'));
  const rest = r.findings.filter((f) => f !== dmarc && f.level !== 'info');
  return [`${dmarc ? dmarc.message : 'DMARC record found'}  (as ${r.server} sees it)`, ...rest.map((f) => `${f.level} ${f.code}: ${f.message}`)];
}

/** 90061 → "1d 1h"; under a minute → "0m". */
export function age(seconds: number): string {
  const d = Math.floor(seconds / 86_400);
  const h = Math.floor((seconds % 86_400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  if (d > 0) return h > 0 ? `${d}d ${h}h` : `${d}d`;
  if (h > 0) return m > 0 ? `${h}h ${m}m` : `${h}h`;
  return `${m}m`;
}
