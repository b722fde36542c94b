// Every Prometheus metric of the relay, named and explained in one place.
// contrib/grafana/dkim-relay.json and contrib/prometheus/alerts.yml use these
// names (a test checks that each name they use is registered here).
//
// Labels come from bounded sets only: the signing domain and selector (keys of
// the key store), a fixed refusal reason, a key or DNS state, a DNS server of
// the configuration. Never a sender, recipient or From: domain, which anyone
// who can send mail chooses.
//
// Wiring, one line each:
//   metrics.handled(outcome)                  relay-message.ts, per message
//   metrics.delivered(domain, latencySeconds) the upstream took a message
//   metrics.deferred(domain)                  a delivery attempt failed for now
//   metrics.bounced(domain)                   a message was given up (5xx, or too old)
//   metrics.watchQueue(() => ({ messages, oldestAgeSeconds }))
//   metrics.watchKeys(() => statusReport)     key states, DNS, DMARC readiness
//   metrics.readinessChecked(results)         readiness-watch.ts, after each round of SPF/DMARC lookups
//   metrics.backgroundFailed(task)            the supervisor (src/common/supervisor.ts), per failed run of a task
//   metrics.superviseCollection(run)          the supervisor runs the collection of each scrape's queue and key gauges
//   metrics.watchReceivers(() => evidence)    receivers' DMARC aggregate reports over reports.windowDays
//   metrics.receiversChanged()                after reports were imported: the next scrape reads them again
// where `domain` is the d= of the message's signature, or null for mail sent unsigned.
import type { UpstreamState } from '../delivery/upstream-health.ts';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ObservedState } from '../rotation/observation.ts';
import type { StepName } from '../rotation/plan.ts';
import { BACKGROUND_TASKS, type BackgroundTask } from '../common/background-tasks.ts';
import type { TokenHealth } from '../keys/pkcs11-token.ts';
import { RecentCounts } from './recent-counts.ts';
import { REFUSAL_REASONS, refusalReason, type RefusalReason } from './refusal-reason.ts';
import type { ReadinessResult } from '../dns/readiness-lookup.ts';
import type { ReceiversInput, StatusReport } from './status-report.ts';
import { FLEET_NODE_STATES, type FleetStatus } from './fleet-status.ts';
import { replyLine, replyText, type SmtpReply } from '../smtp/reply.ts';

export interface QueueDepthSample {
  messages: number;
  oldestAgeSeconds: number;
  /** queue.db's pages in octets: in use, and free (kept for the next messages until given back). */
  database?: { usedBytes: number; freeBytes: number };
}

/** What processMessage decided for one message (its Outcome fits). */
export interface HandledMessage {
  action: 'deliver' | 'refuse';
  reply?: SmtpReply;
  fromDomain?: string;
  signatures: readonly { domain: string; selector: string }[];
  selfCheck: 'pass' | 'fail' | 'unsigned';
}

/** A refusal as the status page lists it; the reply quotes the message, so it is shown escaped. */
export interface RecentRefusal {
  at: string;
  fromDomain: string | null;
  reason: RefusalReason;
  reply: string;
}

export type DmarcState = 'enforced' | 'partial' | 'none' | 'missing' | 'invalid' | 'lookup-failed';
export const DMARC_STATES: readonly DmarcState[] = ['enforced', 'partial', 'none', 'missing', 'invalid', 'lookup-failed'];
const KEY_STATES = ['pending', 'active', 'retiring', 'revoked'] as const;
const DNS_STATES: readonly ObservedState[] = ['match', 'missing', 'mismatch', 'malformed', 'unreachable'];

/** The label of mail sent without a signature; parentheses cannot occur in a domain name. */
export const UNSIGNED = '(none)';
/** Past this many distinct domains, further ones are counted under OTHER: a wrong caller cannot explode the series. */
const MAX_DOMAINS = 1000;
const OTHER = '(other)';
const RECENT_REFUSALS = 20;
/** One status report serves every key gauge of a scrape. */
const REPORT_CACHE_MS = 1000;
/** Reports arrive a few times a day: read again after an import, or once a minute as the window moves. */
const RECEIVERS_CACHE_MS = 60_000;

export interface MetricsOptions {
  now?: () => number;
  /** prom-client's process and Node.js metrics (CPU, memory, event loop, handles). */
  processMetrics?: boolean;
}

export class RelayMetrics {
  readonly registry = new Registry();
  /** Per-minute counts of the last day, for the status page. */
  readonly recent: RecentCounts;
  private readonly now: () => number;
  private readonly domains = new Set<string>();
  private readonly refusals: RecentRefusal[] = [];
  private readonly readiness = new Map<string, { result: ReadinessResult; at: number }>();
  private queueSource: (() => QueueDepthSample) | undefined;
  private upstreamSource: (() => UpstreamState) | undefined;
  private fleetSource: (() => { fleet: FleetStatus; generation: number | null; unreachableSeconds: number }) | undefined;
  private keySource: (() => StatusReport) | undefined;
  private tokenSource: (() => TokenHealth | undefined) | undefined;
  private cachedReport: { at: number; report: StatusReport | undefined } | undefined;
  private receiverSource: (() => Promise<ReceiversInput>) | undefined;
  private cachedReceivers: { at: number; value: ReceiversInput | undefined } | undefined;
  private readingReceivers: Promise<void> | undefined;
  /** Runs a scrape's reading of the queue and the key store; a failure leaves those gauges empty, never the whole scrape. */
  private collecting: <T>(work: () => T) => T | undefined = (work) => work();

  private readonly receivedTotal: Counter;
  private readonly signedTotal: Counter<'domain' | 'selector'>;
  private readonly selfCheckFailuresTotal: Counter<'domain'>;
  private readonly refusedTotal: Counter<'reason'>;
  private readonly deliveredTotal: Counter<'domain'>;
  private readonly deferredTotal: Counter<'domain'>;
  private readonly bouncedTotal: Counter<'domain'>;
  private readonly deliverySeconds: Histogram;
  private readonly backgroundFailuresTotal: Counter<'task'>;

  constructor(options: MetricsOptions = {}) {
    this.now = options.now ?? Date.now;
    this.recent = new RecentCounts(this.now);
    const registers = [this.registry];
    const self = this;

    this.receivedTotal = new Counter({
      name: 'dkim_relay_messages_received_total',
      help: 'Messages received over SMTP (DATA completed) and handed to the pipeline.',
      registers,
    });
    this.signedTotal = new Counter({
      name: 'dkim_relay_messages_signed_total',
      help: 'Messages signed, by signing domain and selector; a dual-signed message counts once for each key.',
      labelNames: ['domain', 'selector'],
      registers,
    });
    this.selfCheckFailuresTotal = new Counter({
      name: 'dkim_relay_self_check_failures_total',
      help: "Messages whose signature failed the relay's own verification or DMARC alignment, by signing domain.",
      labelNames: ['domain'],
      registers,
    });
    this.refusedTotal = new Counter({
      name: 'dkim_relay_messages_refused_total',
      help: `Messages the relay refused after DATA, by reason: ${REFUSAL_REASONS.join(', ')}.`,
      labelNames: ['reason'],
      registers,
    });
    for (const reason of REFUSAL_REASONS) this.refusedTotal.inc({ reason }, 0);
    this.deliveredTotal = new Counter({
      name: 'dkim_relay_messages_delivered_total',
      help: `Messages the upstream accepted, by signing domain ("${UNSIGNED}": sent unsigned).`,
      labelNames: ['domain'],
      registers,
    });
    this.deferredTotal = new Counter({
      name: 'dkim_relay_messages_deferred_total',
      help: 'Delivery attempts that failed temporarily (4xx or no connection), by signing domain.',
      labelNames: ['domain'],
      registers,
    });
    this.bouncedTotal = new Counter({
      name: 'dkim_relay_messages_bounced_total',
      help: 'Messages given up: refused for good by the upstream, or too old to retry, by signing domain.',
      labelNames: ['domain'],
      registers,
    });
    this.deliverySeconds = new Histogram({
      name: 'dkim_relay_delivery_seconds',
      help: 'Time from receiving a message to the upstream accepting it.',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14_400, 86_400],
      registers,
    });

    this.backgroundFailuresTotal = new Counter({
      name: 'dkim_relay_background_failures_total',
      help: `Failed runs of the relay's background work, by task: ${BACKGROUND_TASKS.join(', ')}. Each runs again at its next time.`,
      labelNames: ['task'],
      registers,
    });
    for (const task of BACKGROUND_TASKS) this.backgroundFailuresTotal.inc({ task }, 0);

    new Gauge({
      name: 'dkim_relay_queue_messages',
      help: 'Messages waiting in the queue for delivery (0 also while no queue reports: delivery while the client waits).',
      registers,
      collect() {
        this.set(self.collecting(() => self.queueDepth())?.messages ?? 0);
      },
    });
    new Gauge({
      name: 'dkim_relay_key_generation',
      help: 'With a shared PostgreSQL store: the store generation of the key set this relay signs with (absent before the first load).',
      registers,
      collect() {
        this.reset();
        const generation = self.fleetSource?.().generation;
        if (generation != null) this.set(generation);
      },
    });
    new Gauge({
      name: 'dkim_relay_fleet_nodes',
      help: 'With a shared PostgreSQL store: the relays of the fleet by state (current; catching-up: loading a newer key set; outdated: an older key set; silent: not heard from; gone: silent for a week).',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        const fleet = self.fleetSource?.().fleet;
        if (!fleet) return;
        for (const state of FLEET_NODE_STATES) this.set({ state }, fleet.nodes.filter((n) => n.state === state).length);
      },
    });
    new Gauge({
      name: 'dkim_relay_key_store_unreachable_seconds',
      help: 'With a shared PostgreSQL store: how long it has not answered (signing goes on with the keys held; rotation waits); 0 while it answers.',
      registers,
      collect() {
        this.set(self.fleetSource?.().unreachableSeconds ?? 0);
      },
    });
    new Gauge({
      name: 'dkim_relay_key_token_up',
      help: 'With keys.pkcs11: 1 while the PKCS#11 token signs, 0 while it fails (mail of the domains whose keys it holds is deferred); absent before its first use.',
      labelNames: ['token'],
      registers,
      collect() {
        this.reset();
        const health = self.tokenSource?.();
        if (health && health.state !== 'unknown') this.set({ token: health.token }, health.state === 'up' ? 1 : 0);
      },
    });
    new Gauge({
      name: 'dkim_relay_upstream_failing_seconds',
      help: 'How long every delivery attempt to the smart host has failed (no connection, session or login refused); 0 while it answers, or without a smart host.',
      registers,
      collect() {
        const state = self.upstreamSource?.();
        this.set(state?.failingSince == null ? 0 : Math.max(0, (state.now - state.failingSince) / 1000));
      },
    });
    new Gauge({
      name: 'dkim_relay_queue_db_bytes',
      help: "queue.db's size by its pages: used (queued mail and its rows) and free (reused by the next messages, and given back to the file system once more than a quarter of the file is free). Absent without a queue.",
      labelNames: ['pages'],
      registers,
      collect() {
        this.reset();
        const database = self.collecting(() => self.queueDepth())?.database;
        if (!database) return;
        this.set({ pages: 'used' }, database.usedBytes);
        this.set({ pages: 'free' }, database.freeBytes);
      },
    });
    new Gauge({
      name: 'dkim_relay_queue_oldest_message_age_seconds',
      help: 'Age of the oldest message waiting in the queue (0 when it is empty, or no queue reports).',
      registers,
      collect() {
        this.set(self.collecting(() => self.queueDepth())?.oldestAgeSeconds ?? 0);
      },
    });

    new Gauge({
      name: 'dkim_relay_key_state',
      help: 'Each key of the store: 1 for its lifecycle state (pending, active, retiring, revoked), 0 for the others.',
      labelNames: ['domain', 'selector', 'algorithm', 'state'],
      registers,
      collect() {
        this.reset();
        for (const { domain, keys } of self.report()?.domains ?? []) {
          for (const key of keys) {
            for (const state of KEY_STATES) this.set({ domain, selector: key.selector, algorithm: key.algorithm, state }, key.state === state ? 1 : 0);
          }
        }
      },
    });
    new Gauge({
      name: 'dkim_relay_key_age_seconds',
      help: 'Seconds since each key entered its state (created, activated, retired or revoked).',
      labelNames: ['domain', 'selector', 'state'],
      registers,
      collect() {
        this.reset();
        for (const { domain, keys } of self.report()?.domains ?? []) {
          for (const key of keys) this.set({ domain, selector: key.selector, state: key.state }, key.ageSeconds);
        }
      },
    });
    new Gauge({
      name: 'dkim_relay_key_next_step_seconds',
      help: 'Seconds until the next lifecycle step of each key (rotate, activate, revoke, remove); 0 while it is due. Absent when the step waits for something other than time (DNS, queued mail).',
      labelNames: ['domain', 'selector', 'step'],
      registers,
      collect() {
        this.reset();
        const now = self.now();
        for (const { domain, keys } of self.report()?.domains ?? []) {
          for (const key of keys) {
            if (!key.next || key.next.at === null) continue;
            const step: StepName = key.next.step;
            this.set({ domain, selector: key.selector, step }, key.next.due ? 0 : Math.max(0, (Date.parse(key.next.at) - now) / 1000));
          }
        }
      },
    });
    new Gauge({
      name: 'dkim_relay_attention',
      help: 'Things that need a person, as `dkim-relay status` lists them, by domain and code (stuck-pending, record-lost, key-unusable).',
      labelNames: ['domain', 'code'],
      registers,
      collect() {
        this.reset();
        for (const { domain, attention } of self.report()?.domains ?? []) {
          for (const code of ['stuck-pending', 'record-lost', 'key-unusable'] as const) {
            this.set({ domain, code }, attention.filter((a) => a.code === code).length);
          }
        }
      },
    });
    new Gauge({
      name: 'dkim_relay_dns_state',
      help: "What each DNS server served for each key's record at the last check: 1 for that state (match, missing, mismatch, malformed, unreachable), 0 for the others.",
      labelNames: ['domain', 'selector', 'server', 'state'],
      registers,
      collect() {
        this.reset();
        for (const { domain, keys } of self.report()?.domains ?? []) {
          for (const key of keys) {
            for (const seen of key.dns.servers) {
              for (const state of DNS_STATES) this.set({ domain, selector: key.selector, server: seen.server, state }, seen.state === state ? 1 : 0);
            }
          }
        }
      },
    });
    new Gauge({
      name: 'dkim_relay_dns_last_check_timestamp_seconds',
      help: "When each DNS server was last asked for each key's record (Unix time).",
      labelNames: ['domain', 'selector', 'server'],
      registers,
      collect() {
        this.reset();
        for (const { domain, keys } of self.report()?.domains ?? []) {
          for (const key of keys) {
            for (const seen of key.dns.servers) this.set({ domain, selector: key.selector, server: seen.server }, Date.parse(seen.lastChecked) / 1000);
          }
        }
      },
    });
    new Gauge({
      name: 'dkim_relay_dmarc_state',
      help: `Each signing domain's DMARC policy at the last lookup: 1 for its state (${DMARC_STATES.join(', ')}), 0 for the others. Absent until looked up.`,
      labelNames: ['domain', 'state'],
      registers,
      collect() {
        this.reset();
        for (const [domain, { result }] of self.readiness) {
          const current = dmarcState(result);
          if (current === undefined) continue;
          for (const state of DMARC_STATES) this.set({ domain, state }, state === current ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: 'dkim_relay_dmarc_last_check_timestamp_seconds',
      help: "When each signing domain's SPF and DMARC were last looked up (Unix time).",
      labelNames: ['domain'],
      registers,
      collect() {
        this.reset();
        for (const [domain, { at }] of self.readiness) this.set({ domain }, at / 1000);
      },
    });

    this.registerReceiverGauges();
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  /** What receivers' aggregate reports say per domain over reports.windowDays, as `dkim-relay reports --json --days N` counts it. */
  private registerReceiverGauges(): void {
    const self = this;
    new Gauge({
      name: 'dkim_relay_dmarc_reported_messages',
      help: "Messages receivers' DMARC aggregate reports counted over the last reports.windowDays days, by From: domain and DMARC result (pass, fail).",
      labelNames: ['domain', 'result'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const e of self.receivers()?.evidence.values() ?? []) {
          this.set({ domain: e.domain, result: 'pass' }, e.dmarcPass);
          this.set({ domain: e.domain, result: 'fail' }, e.messages - e.dmarcPass);
        }
      },
    });
    new Gauge({
      name: 'dkim_relay_dmarc_relay_signed_dkim_fail_messages',
      help: "Messages signed with the relay's keys whose DKIM signature receivers reported failing (altered in transit), over the last reports.windowDays days.",
      labelNames: ['domain'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const e of self.receivers()?.evidence.values() ?? []) this.set({ domain: e.domain }, e.relaySignedFailing.messages);
      },
    });
  }

  /**
   * Receivers' reports per domain, read (in the key store's engine, so
   * asynchronously) at most once a minute, or again after receiversChanged();
   * the returned function stops asking.
   */
  watchReceivers(source: () => Promise<ReceiversInput>): () => void {
    this.receiverSource = source;
    this.cachedReceivers = undefined;
    return () => {
      if (this.receiverSource === source) this.receiverSource = undefined;
    };
  }

  /** The reading is stale: the next refreshReceivers() reads again; until then the last one is shown. */
  receiversChanged(): void {
    if (this.cachedReceivers) this.cachedReceivers.at = -Infinity;
  }

  /** Reads the reports again when the last reading is stale; resolves when read. Called before each scrape and status page. */
  async refreshReceivers(): Promise<void> {
    const now = this.now();
    const source = this.receiverSource;
    if (!source || (this.cachedReceivers && now - this.cachedReceivers.at < RECEIVERS_CACHE_MS)) return;
    this.readingReceivers ??= source()
      .then(
        (value) => void (this.cachedReceivers = { at: now, value }),
        // Reported as a failed collection (one supervised path); the last reading stays shown.
        (err: unknown) =>
          void this.collecting(() => {
            this.cachedReceivers = { at: now, value: this.cachedReceivers?.value };
            throw err;
          }),
      )
      .finally(() => (this.readingReceivers = undefined));
    await this.readingReceivers;
  }

  /** The last reading of the reports (for the status page and report too, so all show the same numbers). */
  receivers(): ReceiversInput | undefined {
    return this.cachedReceivers?.value;
  }

  /** One message through the pipeline: received, its signatures, its self-check, and why it was refused. */
  handled(message: HandledMessage): void {
    this.receivedTotal.inc();
    this.recent.add('received');
    for (const s of message.signatures) this.signedTotal.inc({ domain: this.domain(s.domain), selector: s.selector });
    if (message.signatures.length > 0) this.recent.add('signed');
    if (message.selfCheck === 'pass') this.recent.add('selfCheckPassed');
    if (message.selfCheck === 'fail') {
      this.selfCheckFailuresTotal.inc({ domain: this.domain(message.signatures[0]?.domain ?? null) });
      this.recent.add('selfCheckFailed');
    }
    if (message.action === 'refuse') {
      const reply = message.reply ?? { code: 0, text: '' };
      const reason = refusalReason(reply.code, replyText(reply));
      this.refusedTotal.inc({ reason });
      this.recent.add('refused');
      this.refusals.unshift({ at: new Date(this.now()).toISOString(), fromDomain: message.fromDomain ?? null, reason, reply: replyLine(reply) });
      this.refusals.length = Math.min(this.refusals.length, RECENT_REFUSALS);
    }
  }

  delivered(domain: string | null, latencySeconds?: number): void {
    this.deliveredTotal.inc({ domain: this.domain(domain) });
    if (latencySeconds !== undefined) this.deliverySeconds.observe(latencySeconds);
    this.recent.add('delivered');
  }

  deferred(domain: string | null): void {
    this.deferredTotal.inc({ domain: this.domain(domain) });
    this.recent.add('deferred');
  }

  bounced(domain: string | null): void {
    this.bouncedTotal.inc({ domain: this.domain(domain) });
    this.recent.add('bounced');
  }

  /** The upstream's answer to a delivery made while the client waits: 2xx delivered, 4xx deferred, 5xx bounced. */
  deliveryAnswered(domain: string | null, code: number, latencySeconds: number): void {
    if (code < 400) this.delivered(domain, latencySeconds);
    else if (code < 500) this.deferred(domain);
    else this.bounced(domain);
  }

  /** The queue's depth, asked at each scrape; the returned function stops asking (only if still the current source). */
  watchQueue(source: () => QueueDepthSample): () => void {
    this.queueSource = source;
    return () => {
      if (this.queueSource === source) this.queueSource = undefined;
    };
  }

  /** The smart host's state, asked at each scrape and page; the returned function stops asking. */
  watchUpstream(source: () => UpstreamState): () => void {
    this.upstreamSource = source;
    return () => {
      if (this.upstreamSource === source) this.upstreamSource = undefined;
    };
  }

  /** The fleet sharing the PostgreSQL store, and this relay's place in it. */
  watchFleet(source: () => { fleet: FleetStatus; generation: number | null; unreachableSeconds: number }): () => void {
    this.fleetSource = source;
    return () => {
      if (this.fleetSource === source) this.fleetSource = undefined;
    };
  }

  /** The PKCS#11 token of keys.pkcs11, asked at each scrape and at /readyz. */
  watchToken(source: () => TokenHealth | undefined): () => void {
    this.tokenSource = source;
    return () => {
      if (this.tokenSource === source) this.tokenSource = undefined;
    };
  }

  tokenHealth(): TokenHealth | undefined {
    return this.tokenSource?.();
  }

  /** A shared key store's reach, for /readyz; undefined with a relay's own store. */
  keyStoreReach(): { unreachableSeconds: number; loaded: boolean } | undefined {
    const source = this.fleetSource?.();
    return source && { unreachableSeconds: source.unreachableSeconds, loaded: source.generation !== null };
  }

  upstreamState(): UpstreamState | undefined {
    return this.upstreamSource?.();
  }

  /** The status report (keys, DNS, DMARC readiness), built at most once a second while scraped. */
  watchKeys(source: () => StatusReport): () => void {
    this.keySource = source;
    this.cachedReport = undefined;
    return () => {
      if (this.keySource === source) this.keySource = undefined;
    };
  }

  /**
   * The results of one round of SPF/DMARC lookups, one per signing domain,
   * kept until the next round (scrapes never query DNS). They replace the
   * last round's: a domain whose keys were all removed since drops out,
   * rather than being reported as it was forever.
   */
  readinessChecked(results: ReadonlyMap<string, ReadinessResult>): void {
    const at = this.now();
    this.readiness.clear();
    for (const [domain, result] of results) this.readiness.set(domain, { result, at });
    this.cachedReport = undefined;
  }

  backgroundFailed(task: BackgroundTask): void {
    this.backgroundFailuresTotal.inc({ task });
  }

  /** How each scrape's collection runs from now on; the returned function goes back to running it bare (only if still the current one). */
  superviseCollection(run: <T>(work: () => T) => T | undefined): () => void {
    this.collecting = run;
    return () => {
      if (this.collecting === run) this.collecting = (work) => work();
    };
  }

  /** The last lookup of each domain, for the status report. */
  lastReadiness(): Map<string, ReadinessResult> {
    return new Map([...this.readiness].map(([domain, { result }]) => [domain, result]));
  }

  queueDepth(): QueueDepthSample | undefined {
    return this.queueSource?.();
  }

  recentRefusals(): readonly RecentRefusal[] {
    return this.refusals;
  }

  /** The exposition text of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  private report(): StatusReport | undefined {
    const now = this.now();
    const source = this.keySource;
    if (!this.cachedReport || now - this.cachedReport.at >= REPORT_CACHE_MS) this.cachedReport = { at: now, report: source && this.collecting(source) };
    return this.cachedReport.report;
  }

  private domain(domain: string | null): string {
    if (domain === null) return UNSIGNED;
    if (this.domains.has(domain)) return domain;
    if (this.domains.size >= MAX_DOMAINS) return OTHER;
    this.domains.add(domain);
    return domain;
  }
}

/** The DMARC state behind a lookup's findings; undefined when the domain was not looked up. */
export function dmarcState(result: ReadinessResult): DmarcState | undefined {
  if (result.status === 'not-checked') return undefined;
  if (result.status === 'failed') return 'lookup-failed';
  const codes = new Set(result.findings.map((f) => f.code));
  if (codes.has('dmarc-enforced')) return 'enforced';
  if (codes.has('dmarc-pct')) return 'partial';
  if (codes.has('dmarc-none')) return 'none';
  if (codes.has('dmarc-missing')) return 'missing';
  return 'invalid';
}

/** The relay's metrics: one set per process, so counters go on across a configuration reload. */
export const metrics = new RelayMetrics({ processMetrics: true });
