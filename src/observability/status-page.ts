// The read-only status page at `/`: plain HTML with inline CSS, rendered on
// the server, readable without JavaScript. Pure: the status report (from
// status-report.ts, as `dkim-relay status` shows it), health and counts are
// passed in.
//
// Every value is escaped by the `html` template: refusal replies quote From:
// fields, which anyone who can send mail writes.
import type { StoredKey } from '../keys/store.ts';
import { when } from '../rotation/plan.ts';
import type { UpstreamState } from '../delivery/upstream-health.ts';
import { upstreamProblem, type Health } from './health.ts';
import { dmarcState, type QueueDepthSample, type RecentRefusal } from './metrics.ts';
import type { RecentTotals } from './recent-counts.ts';
import type { TaskHealth } from '../common/background-tasks.ts';
import type { ReadinessResult } from '../dns/readiness-lookup.ts';
import { age, homeLine, taskLine, type DomainStatus, type KeyStatus, type ReceiversStatus, type StatusReport } from './status-report.ts';
import { count, percent, type ReceiverEvidence } from './receiver-evidence.ts';
import type { QueuedBySigner } from '../keys/heartbeat.ts';
import { needsAttention, nodeStateText, storeAwayText, type FleetNodeState, type FleetStatus } from './fleet-status.ts';

export interface PageInput {
  report: StatusReport;
  keys: readonly StoredKey[];
  health: Health;
  lastHour: RecentTotals;
  lastDay: RecentTotals;
  /** undefined: no queue reports its depth (delivery while the client waits). */
  queue: QueueDepthSample | undefined;
  /** undefined: no smart host (file or mx delivery). */
  upstream?: UpstreamState | undefined;
  refusals: readonly RecentRefusal[];
  /** Background tasks that failed since the relay started. */
  background?: readonly TaskHealth[];
}

/** Text made safe for HTML; only `html` makes it, so nothing unescaped slips in by accident. */
class Safe {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

type Value = Safe | string | number | null | undefined | readonly Value[];

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function render(value: Value): string {
  if (value instanceof Safe) return value.text;
  if (Array.isArray(value)) return value.map(render).join('');
  if (value === null || value === undefined) return '';
  return escapeHtml(String(value));
}

function html(strings: TemplateStringsArray, ...values: Value[]): Safe {
  return new Safe(strings.reduce((out, s, i) => out + s + (i < values.length ? render(values[i]!) : ''), ''));
}

const STAGES = ['pending', 'active', 'retiring', 'revoked'] as const;
/** The state each step leads to; `rotate` makes a new key, and `remove` ends the timeline. */
const STEP_TO: Record<string, string | undefined> = { activate: 'active', revoke: 'revoked' };

const STYLE = `
body { font: 15px/1.45 system-ui, sans-serif; margin: 1.5rem auto; max-width: 72rem; padding: 0 1rem; color: #1d2430; background: #fbfbfc; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; } h2 { font-size: 1.2rem; margin: 1.75rem 0 .5rem; border-bottom: 1px solid #d6dae1; }
h3 { font-size: 1rem; margin: 1rem 0 .35rem; } .muted { color: #5d6673; }
table { border-collapse: collapse; margin: .25rem 0 .75rem; } th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #e4e7ec; vertical-align: top; }
th { font-weight: 600; background: #f0f2f5; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: .05rem .5rem; border-radius: .7rem; font-size: .85em; font-weight: 600; }
.ok { background: #dff3e4; color: #17602c; } .bad { background: #fbe0df; color: #8f1d17; } .warn { background: #fdf0d5; color: #7a4d00; } .idle { background: #eceef1; color: #4b5563; }
.timeline { display: grid; grid-template-columns: repeat(4, minmax(9rem, 1fr)); gap: 0; margin: .2rem 0; }
.stage { padding: .35rem .5rem; border: 1px solid #d6dae1; border-left-width: 0; font-size: .88em; background: #fff; }
.stage:first-child { border-left-width: 1px; border-radius: .4rem 0 0 .4rem; } .stage:last-child { border-radius: 0 .4rem .4rem 0; }
.stage b { display: block; text-transform: uppercase; font-size: .75em; letter-spacing: .04em; color: #5d6673; }
.stage.done { background: #f3f5f8; } .stage.current { background: #1f6feb; color: #fff; border-color: #1f6feb; } .stage.current b { color: #dbe8ff; }
.stage.planned { border-style: dashed; }
.key { margin: .6rem 0 1rem; } .key .name { font-weight: 600; } .attention { color: #8f1d17; font-weight: 600; }
code { font-size: .92em; }`;

export function statusPage(input: PageInput): string {
  const { report, health } = input;
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="60"><title>dkim-relay status</title><style>${new Safe(STYLE)}</style></head>
<body>
<h1>dkim-relay status</h1>
<p class="muted">as of ${when(report.generatedAt)} · <a href="/metrics">metrics</a> · <a href="/healthz">healthz</a></p>
${healthSection(health)}
${backgroundSection(input.background ?? [])}
<h2>Mail</h2>
${countsTable(input.lastHour, input.lastDay)}
${queueLine(input.queue)}
${upstreamLine(input.upstream)}
${report.domains.length === 0 ? html`<h2>Keys</h2><p>No keys yet: <code>dkim-relay keys generate --domain example.com</code></p>` : report.domains.map((d) => domainSection(d, input.keys))}
${report.fleet ? fleetSection(report.fleet) : ''}
${refusalsSection(input.refusals)}
</body></html>
`.text;
}

function healthSection(health: Health): Safe {
  const failed = health.checks.filter((c) => !c.ok);
  if (failed.length === 0)
    return html`<p><span class="badge ok">healthy</span> <span class="muted">${health.checks.map((c) => `${c.name}: ${c.detail}`).join(' · ')}</span></p>`;
  return html`<p><span class="badge bad">unhealthy</span></p><ul>${failed.map((c) => html`<li class="attention">${c.name}: ${c.detail}</li>`)}</ul>`;
}

function backgroundSection(tasks: readonly TaskHealth[]): Safe {
  if (tasks.length === 0) return html`<p id="background" class="muted">Background tasks: none failed since the relay started.</p>`;
  return html`<h2>Background tasks</h2>
<ul id="background">${tasks.map((t) => html`<li data-task="${t.task}" data-state="${t.state}"${t.state === 'failing' ? html` class="attention"` : ''}>${taskLine(t)}</li>`)}</ul>`;
}

function countsTable(hour: RecentTotals, day: RecentTotals): Safe {
  const rows: [string, keyof RecentTotals][] = [
    ['received', 'received'],
    ['signed', 'signed'],
    ['self-check passed', 'selfCheckPassed'],
    ['self-check failed', 'selfCheckFailed'],
    ['refused', 'refused'],
    ['delivered', 'delivered'],
    ['deferred', 'deferred'],
    ['bounced', 'bounced'],
  ];
  return html`<table id="counts"><thead><tr><th>messages</th><th>last hour</th><th>last day</th></tr></thead><tbody>
${rows.map(
  ([label, key]) => html`<tr data-count="${key}"><td>${label}</td><td class="n">${hour[key]}</td><td class="n">${day[key]}</td></tr>
`,
)}</tbody></table>
<p class="muted">Counted since the relay started, at most the last day.</p>`;
}

function upstreamLine(upstream: UpstreamState | undefined): Safe | string {
  if (!upstream) return '';
  const problem = upstreamProblem(upstream);
  if (problem) return html`<p id="upstream">Upstream: <span class="badge bad">failing</span> ${problem}</p>`;
  return html`<p id="upstream">Upstream: <span class="badge ok">answering</span> <span class="muted">${upstream.name}</span></p>`;
}

function queueLine(queue: QueueDepthSample | undefined): Safe {
  if (!queue)
    return html`<p id="queue">Queue: <span class="badge idle">none</span> <span class="muted">messages are delivered while the client waits</span></p>`;
  const badge = queue.messages === 0 ? 'ok' : 'warn';
  const { database } = queue;
  const size = database
    ? html` <span class="muted">queue.db ${mib(database.usedBytes + database.freeBytes)} MiB, ${mib(database.freeBytes)} MiB of it free</span>`
    : '';
  return html`<p id="queue">Queue: <span class="badge ${badge}">${queue.messages} message${queue.messages === 1 ? '' : 's'}</span>${queue.messages > 0 ? html` <span class="muted">oldest waiting ${age(Math.round(queue.oldestAgeSeconds))}</span>` : ''}${size}</p>`;
}

const mib = (octets: number) => (octets / 1_048_576).toFixed(1);

function domainSection(domain: DomainStatus, keys: readonly StoredKey[]): Safe {
  const rows = keys.filter((k) => k.domain === domain.domain);
  return html`<section class="domain" data-domain="${domain.domain}">
<h2>${domain.domain}</h2>
${domain.keys.some((k) => k.state === 'active') ? '' : html`<p class="attention">No active key: nothing signs for this domain yet.</p>`}
${domain.attention.map((a) => html`<p class="attention">! ${a.message}</p>`)}
${domain.keys.map((k) =>
  keyBlock(
    k,
    rows.find((r) => r.selector === k.selector),
  ),
)}
<h3>DMARC readiness</h3>
${readinessBlock(domain.readiness)}
${domain.receivers ? receiversSection(domain.receivers) : ''}
</section>
`;
}

function keyBlock(key: KeyStatus, row: StoredKey | undefined): Safe {
  const dates: Record<string, string | null | undefined> = {
    pending: row?.createdAt,
    active: row?.activatedAt,
    retiring: row?.retiredAt,
    revoked: row?.revokedAt,
  };
  const current = STAGES.indexOf(key.state);
  const plannedStage = key.next ? STEP_TO[key.next.step] : undefined;
  const stages = STAGES.map((stage, i) => {
    if (i === current) return html`<div class="stage current"><b>${stage}</b>since ${when(key.since)}<br>${age(key.ageSeconds)}</div>`;
    const at = dates[stage];
    if (i < current || (at && i > current)) return html`<div class="stage done"><b>${stage}</b>${at ? when(at) : 'skipped'}</div>`;
    if (stage === plannedStage) return html`<div class="stage planned"><b>${stage}</b>${key.next!.at ? when(key.next!.at) : 'when DNS allows'}</div>`;
    return html`<div class="stage"><b>${stage}</b>&nbsp;</div>`;
  });
  return html`<div class="key" data-selector="${key.selector}" data-state="${key.state}">
<span class="name">${key.selector}</span>${key.client ? html` <span class="badge idle" data-client="${key.client}">client ${key.client}</span>` : ''} <span class="muted">${key.algorithm}${key.algorithm === 'rsa' ? ` ${key.bits}` : ''}</span> <span class="badge ${key.state === 'active' ? 'ok' : 'idle'}">${key.state}</span>
<div class="timeline">${stages}</div>
${key.next ? html`<div>next: ${key.next.text}${key.next.due ? html` <span class="badge warn">due</span>` : ''}</div>` : ''}
<div>DNS: ${dnsLine(key)}</div>
${key.home ? html`<div class="home" data-home="${key.home.kind}">key: ${homeLine(key.home)}</div>` : ''}
</div>
`;
}

function dnsLine(key: KeyStatus): Safe {
  if (key.dns.lastChecked === null) return html`<span class="badge idle">never checked</span>`;
  return html`${key.dns.servers.map((s) => html`<span class="badge ${s.state === 'match' ? 'ok' : s.state === 'unreachable' ? 'warn' : 'bad'}">${s.server} ${s.state}</span>${s.detail ? html` <span class="muted">${s.detail}</span>` : ''} `)}<span class="muted">last checked ${when(key.dns.lastChecked)}</span>`;
}

function readinessBlock(result: ReadinessResult): Safe {
  if (result.status === 'not-checked')
    return html`<p><span class="badge idle">not looked up yet</span> <span class="muted">see <code>dkim-relay status</code></span></p>`;
  if (result.status === 'failed') return html`<p><span class="badge warn">lookup failed</span> ${result.reason}</p>`;
  const state = dmarcState(result)!;
  const badge = state === 'enforced' ? 'ok' : state === 'partial' || state === 'none' ? 'warn' : 'bad';
  return html`<p><span class="badge ${badge}">DMARC ${state}</span> <span class="muted">as ${result.server} sees it</span></p>
<ul>${result.findings.map((f) => html`<li>${f.level} ${f.code}: ${f.message}</li>`)}</ul>`;
}

/** Sources listed per table; `dkim-relay reports` has them all. */
const SOURCES_SHOWN = 20;

/** What receivers' aggregate reports say over the window, with the verdict `dkim-relay status` gives. */
function receiversSection(r: ReceiversStatus): Safe {
  const badge = r.verdict.state === 'ready' ? 'ok' : r.verdict.state === 'not-yet' ? 'warn' : 'idle';
  const label = r.verdict.state === 'ready' ? 'ready for p=quarantine' : r.verdict.state === 'not-yet' ? 'not yet' : 'no reports';
  const head = html`<h3>What receivers report</h3>
    <p class="receivers-verdict" data-state="${r.verdict.state}"><span class="badge ${badge}">${label}</span> ${r.verdict.line}</p>`;
  if (!r.evidence) return html`<div class="receivers">${head}</div>`;
  return html`<div class="receivers">${head} ${evidenceTables(r.evidence)}</div>`;
}

function evidenceTables(e: ReceiverEvidence): Safe {
  return html`<table class="receivers-totals">
      <tbody>
        <tr data-figure="messages">
          <td>messages reported (last ${e.days} days, ${e.reports} report${e.reports === 1 ? '' : 's'})</td>
          <td class="n">${count(e.messages)}</td>
        </tr>
        <tr data-figure="dmarcPass">
          <td>passed DMARC</td>
          <td class="n">${count(e.dmarcPass)} (${percent(e.passShare)})</td>
        </tr>
        <tr data-figure="relaySignedFailing">
          <td>signed by this relay, failing DKIM at a receiver (broken in transit)</td>
          <td class="n">${count(e.relaySignedFailing.messages)}</td>
        </tr>
        <tr data-figure="notRelaySigned">
          <td>not signed by this relay (sources still to bring in)</td>
          <td class="n">${count(e.notRelaySigned.messages)}</td>
        </tr>
      </tbody>
    </table>
    ${
      e.failingSources.length === 0
        ? ''
        : html`<table class="failing-sources">
            <thead>
              <tr>
                <th>failing source</th>
                <th>messages</th>
                <th>why</th>
              </tr>
            </thead>
            <tbody>
              ${e.failingSources.slice(0, SOURCES_SHOWN).map(
                (s) =>
                  html`<tr data-source="${s.sourceIp}">
                    <td><code>${s.sourceIp}</code></td>
                    <td class="n">${count(s.messages)}</td>
                    <td>${s.why.join(', ')}</td>
                  </tr> `,
              )}
            </tbody>
          </table>`
    }
    ${e.failingSources.length > SOURCES_SHOWN ? html`<p class="muted">… and ${e.failingSources.length - SOURCES_SHOWN} more: <code>dkim-relay reports</code></p>` : ''}
    ${
      e.notRelaySigned.sources.length === 0
        ? ''
        : html`<p class="unsigned-sources">
            Not signed by this relay:
            ${e.notRelaySigned.sources
              .slice(0, SOURCES_SHOWN)
              .map((s, i) => html`${i > 0 ? ', ' : ''}<code data-source="${s.sourceIp}">${s.sourceIp}</code> ×${count(s.messages)}`)}
          </p>`
    }
    ${
      e.relaySignedFailing.breakages.length === 0
        ? ''
        : html`<table class="breakages">
            <thead>
              <tr>
                <th>selector</th>
                <th>receiver</th>
                <th>failing DKIM</th>
              </tr>
            </thead>
            <tbody>
              ${e.relaySignedFailing.breakages.map(
                (b) =>
                  html`<tr data-selector="${b.selector}" data-receiver="${b.receiver}">
                    <td>${b.selector}${b.client ? html` <span class="muted" data-client="${b.client}">client ${b.client}</span>` : ''}</td>
                    <td>${b.receiver}</td>
                    <td class="n">${count(b.messages)}</td>
                  </tr> `,
              )}
            </tbody>
          </table>`
    }`;
}

const FLEET_BADGE: Record<FleetNodeState, string> = {
  current: 'ok',
  'catching-up': 'idle',
  outdated: 'bad',
  silent: 'bad',
  gone: 'idle',
};

/** The relays sharing the PostgreSQL key store, as their last heartbeats tell. */
export function fleetSection(fleet: FleetStatus): Safe {
  return html`<h2>Fleet</h2>
<p id="fleet-store">Key generation ${fleet.generation ?? 'unknown'}${fleet.unreachableSince ? html` · <span class="attention">! ${storeAwayText(fleet.unreachableSince)}</span>` : ''}</p>
<table id="fleet"><thead><tr><th>relay</th><th>version</th><th>address</th><th>key generation</th><th>loaded</th><th>last contact</th><th>queued mail</th><th>state</th></tr></thead><tbody>
${fleet.nodes.map(
  (
    n,
  ) => html`<tr data-relay="${n.name}" data-address="${n.address}" data-state="${n.state}"${needsAttention(n.state) ? html` class="attention"` : ''}><td>${needsAttention(n.state) ? '! ' : ''}${n.name}</td><td>${n.version}</td><td><code>${n.address}</code></td><td class="n">${n.generation}</td><td>${when(n.loadedAt)}</td><td>${when(n.lastContact)}</td><td>${queuedCell(n.oldestQueued)}</td><td><span class="badge ${FLEET_BADGE[n.state]}">${n.state.replace('-', ' ')}</span> <span class="muted">${nodeStateText(n, fleet.generation)}</span></td></tr>
`,
)}</tbody></table>`;
}

/** What a relay's queue holds by signing key: a key is revoked only once no relay holds mail it signed. */
function queuedCell(queued: QueuedBySigner | null): Safe {
  if (queued === null) return html`<span class="muted">not told</span>`;
  const times = Object.values(queued);
  if (times.length === 0) return html`none`;
  const oldest = times.reduce((a, b) => (Date.parse(a) <= Date.parse(b) ? a : b));
  return html`since ${when(oldest)} <span class="muted">(signed with ${times.length} key${times.length === 1 ? '' : 's'})</span>`;
}

function refusalsSection(refusals: readonly RecentRefusal[]): Safe {
  if (refusals.length === 0) return html`<h2>Recent refusals</h2><p class="muted">None since the relay started.</p>`;
  return html`<h2>Recent refusals</h2>
<table id="refusals"><thead><tr><th>when</th><th>From: domain</th><th>reason</th><th>reply</th></tr></thead><tbody>
${refusals.map(
  (r) => html`<tr><td>${when(r.at)}</td><td>${r.fromDomain ?? '(none)'}</td><td>${r.reason}</td><td><code>${r.reply}</code></td></tr>
`,
)}</tbody></table>`;
}
