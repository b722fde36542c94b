// The rotation scheduler inside `serve`: at every `rotation.check` (cron) one
// pass, by whichever relay holds the `rotation` lease when several share one
// key store:
//
//   observe DNS  every key that must be published, at every server that must
//                serve it (the zone's authoritative servers, dns.resolvers)
//   plan         src/rotation/plan.ts: the steps due now
//   apply        each step through the key store (idempotent: a step someone
//                else took first changes nothing), publish or withdraw its
//                record through dns.publish (by hand: a mail saying what to
//                publish; failed: tried again at every pass until it works),
//                and one JSON log line per step
//   notify       mail rotation.notify as the relay's own mail (OwnMail: the
//                way delivery status notifications go too; queued in queue
//                mode, straight to the upstream in sync mode); a notice that
//                cannot be handed over is logged and never fails the step or
//                the pass
//
// Leadership: a lease row (rotation-state.ts) names the relay that runs the
// passes. With a shared store it lasts the longest gap between two checks and
// its holder renews it every third of that (and before every step), also
// through a long pass, so a relay that dies is replaced within two checks; in
// keys.db it lasts five minutes and is renewed before every step. Its epoch
// grows at every takeover and every write of a pass
// carries it (src/keys/fence.ts): a leader paused past its lease that wakes
// up finds its writes refused, and its pass ends there.
//
// A pass that fails is reported to the supervisor (logged once per cause,
// counted) and the next tick tries again; the daemon never stops for it. So
// are the DNS observation (a domain whose servers could not be asked has none
// this pass, so none of its keys moves on DNS's word) and a notice that could
// not be mailed (its step is tried again at the next pass; the other steps go
// on). A restart in the middle of a pass neither loses nor repeats a
// step: each step is due because of a state that the step itself changes, in
// one transaction, and the sweeps at the end of every pass (key files of
// removed keys, revealed private keys) finish what a crash interrupted.
import { randomBytes } from 'node:crypto';
import { createTask, type ScheduledTask } from 'node-cron';
import type { Config } from '../config/schema.ts';
import { delegationFor } from '../dns/delegation.ts';
import { PUBLISHED_STATES } from '../dns/dns-check.ts';
import type { RecordChange } from '../dns/publish/change.ts';
import type { Publishers } from '../dns/publish/factory.ts';
import type { StoredKey } from '../keys/store.ts';
import type { KeyStore } from '../keys/key-store.ts';
import { sameChain } from '../keys/lifecycle.ts';
import { causeOf } from '../common/background-tasks.ts';
import type { Logger } from '../common/logger.ts';
import type { OwnMail } from '../pipeline/own-mail.ts';
import { Supervisor } from '../common/supervisor.ts';
import { LiveDnsObserver, type DnsObserver } from './dns-observer.ts';
import { noticeMessage, type RotationNotice } from './notice.ts';
import { observe, type DnsObservation } from './observation.ts';
import { duration, plan, type Action, type NextStep } from './plan.ts';
import { longestGap, policyFor, type RotationPolicy } from './policy.ts';
import type { Delegation } from '../dns/delegation.ts';
import { changesFor, keyRecord } from './publication.ts';
import { revealPrivateKey } from './reveal.ts';
import { Fenced, type Fence } from '../keys/fence.ts';
import type { PgKeyStore } from '../keys/pg-store.ts';
import { SqliteRotationTables } from './rotation-tables.ts';
import type { RotationState } from './rotation-state.ts';

export const LEASE = 'rotation';

/**
 * Applies the DNS changes of one key's step: 'published' once DNS has them,
 * 'manual' when a person has to make them; throws (one line) when they could
 * not be applied, and the scheduler tries again at the next pass.
 */
export interface RecordPublisher {
  apply(changes: readonly RecordChange[]): Promise<'published' | 'manual'>;
}

/** No publisher configured: every record is published by hand, told by mail and log. */
export const manualRecordPublisher: RecordPublisher = { apply: async () => 'manual' };

/** The zones of dns.publish as the scheduler's publisher (one key's changes share one name, so one zone). */
export function publisherFrom(publishers: Publishers): RecordPublisher {
  return {
    async apply(changes) {
      const results = await publishers.publish(changes);
      for (const { result } of results) if (result.status === 'failed') throw new Error(result.reason);
      return results.some(({ result }) => result.status === 'manual') ? 'manual' : 'published';
    },
  };
}

export interface SchedulerOptions {
  config: Config;
  store: KeyStore;
  /** How notices leave: signed like any relayed message, with the null sender. */
  mail: OwnMail;
  hostname: string;
  logger: Logger;
  /** The clock in milliseconds since the epoch, like Date.now; tests pass their own. */
  now?: () => number;
  /** A fresh observer for each pass; default: real DNS as dns.resolvers and the zones' NS records say. */
  observer?: () => DnsObserver;
  publisher?: RecordPublisher;
  /** This relay's queue: a key is not revoked while mail it signed still waits there. */
  queue?: { oldestSignedWith(domain: string, selector: string): number | null };
  /** How long the lease lasts unless renewed; it is renewed before every step. Default: the longest gap between two checks. */
  leaseMs?: number;
  /** Who this scheduler is, in the leases table. */
  holder?: string;
  /** Where failed passes, observations and notices are reported (default: logged only). */
  supervisor?: Supervisor;
}

export interface PassResult {
  /** False when another relay held the lease. */
  ran: boolean;
  /** The steps applied by this pass. */
  applied: Action[];
}

export class LeaseLost extends Error {}

export class RotationScheduler {
  readonly holder: string;
  private readonly options: SchedulerOptions;
  private readonly clock: () => number;
  private readonly leaseMs: number;
  private readonly shared: boolean;
  private readonly publisher: RecordPublisher;
  private tables: RotationState | undefined;
  private readonly supervisor: Supervisor;
  /** The lease held by the pass in progress. */
  private fence: Fence = { lease: LEASE, epoch: -1 };
  private task: ScheduledTask | undefined;
  /** The text of each held revocation last logged, by key id. */
  private held = new Map<number, string>();
  private keeper: NodeJS.Timeout | undefined;
  /** Whether the lease is still this relay's at this.fence's epoch, as far as it knows. */
  private keeping = false;
  private running: Promise<unknown> = Promise.resolve();
  private stopped = false;

  constructor(options: SchedulerOptions) {
    this.options = options;
    this.clock = options.now ?? Date.now;
    const check = options.config.rotation.check;
    // Shared (PostgreSQL): the lease lasts one gap between checks, kept alive on the real clock, so a dead leader is replaced
    // within two checks. keys.db on this machine: a renewal is a synchronous SQLite write that a locked keys.db would hold for
    // its busy timeout, blocking the event loop every few hundred milliseconds; so the lease is long and renewed before each step.
    this.shared = options.store.engine === 'postgres';
    this.leaseMs = options.leaseMs ?? (this.shared && check !== 'off' ? longestGap(check) : 5 * 60_000);
    this.publisher = options.publisher ?? manualRecordPublisher;
    this.holder = options.holder ?? `${options.hostname}/${process.pid}/${randomBytes(4).toString('hex')}`;
    this.supervisor = options.supervisor ?? new Supervisor({ logger: options.logger });
    // keys.db is at hand; the PostgreSQL tables are opened at the first pass, loading the client only then.
    if (options.store.engine !== 'postgres') this.tables = new SqliteRotationTables(options.store.dir);
  }

  /**
   * Runs a pass at every `rotation.check`; a pass still running when the next is due makes that one wait for the following tick.
   * `rotation.check: off`: no pass ever runs here (the keys are managed by another relay, or there are none to manage), so
   * this relay never asks DNS nor changes a key by itself.
   */
  start(): void {
    const { logger, config } = this.options;
    if (config.rotation.check === 'off') {
      logger.info({ check: 'off' }, 'rotation scheduler off (rotation.check: off)');
      return;
    }
    const log = {
      info: (m: string) => logger.debug({ cron: m }, 'rotation timer'),
      debug: () => {},
      warn: (m: string) => logger.warn({ cron: m }, 'rotation timer'),
      error: (m: string | Error) => logger.error({ cron: String(m) }, 'rotation timer'),
    };
    this.task = createTask(config.rotation.check, () => this.tick(), { name: 'rotation', noOverlap: true, logger: log });
    void this.task.start();
    // On the real clock, between passes and through a long one: a relay that stops (dies, SIGSTOP) stops renewing.
    if (this.shared) {
      this.keeper = setInterval(() => void this.keepLease(), Math.max(100, Math.floor(this.leaseMs / 3)));
      this.keeper.unref();
    }
    logger.info({ check: config.rotation.check, holder: this.holder }, 'rotation scheduler started');
  }

  /** One pass that never throws: a failure goes to the supervisor and the next tick tries again. */
  tick(): Promise<PassResult | undefined> {
    const pass = this.supervisor
      .run('rotation', () => this.runOnce())
      .then((result) => {
        if (result) this.options.logger.debug({ rotation: 'pass', ran: result.ran, applied: result.applied.length }, 'rotation pass done');
        return result;
      });
    this.running = pass;
    return pass;
  }

  /** Stops the timer, waits for a pass in flight, gives the lease back. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.keeper);
    if (this.task) await this.task.destroy();
    await this.running;
    const tables = this.tables;
    if (!tables) return;
    try {
      await tables.releaseLease(LEASE, this.holder);
    } catch {
      // The store is away: the lease expires by itself.
    } finally {
      await tables.close();
    }
  }

  /** Extends the lease while this relay holds it at the epoch its writes carry; never takes it over (a pass does). */
  private async keepLease(): Promise<void> {
    const tables = this.tables;
    if (!tables || !this.keeping) return;
    const now = this.now();
    try {
      if (!(await tables.renewLease(LEASE, this.holder, this.fence.epoch, new Date(now.getTime() + this.leaseMs)))) this.keeping = false;
    } catch {
      // The store is away: the lease runs out, and whoever holds it when the store is back acts.
    }
  }

  /** The tables beside the store: in its PostgreSQL database (loaded only then), else in keys.db. */
  private async state(): Promise<RotationState> {
    if (this.tables) return this.tables;
    const { store } = this.options;
    const { PgRotationTables } = await import('./pg-rotation-tables.ts');
    this.tables ??= new PgRotationTables((store as PgKeyStore).openPool());
    return this.tables;
  }

  private now(): Date {
    return new Date(this.clock());
  }

  async runOnce(): Promise<PassResult> {
    try {
      return await this.pass();
    } catch (err) {
      if (!(err instanceof Fenced)) throw err;
      this.options.logger.warn(
        { rotation: 'fenced', holder: this.holder, epoch: err.fence.epoch, current: err.current },
        'rotation write refused: a newer leader took the lease over; this pass ends',
      );
      return { ran: true, applied: [] };
    }
  }

  private async pass(): Promise<PassResult> {
    const { store, config, logger } = this.options;
    // Planned from an empty key set, a pass would forget every notice sent: it waits for the first load.
    if (store.engine === 'postgres' && (store as PgKeyStore).connection().generation === null)
      throw new Error('the key store has not answered yet; rotation waits for it');
    const tables = this.tables ?? (await this.state());
    const started = this.now();
    const epoch = await tables.takeLease(LEASE, this.holder, started, new Date(started.getTime() + this.leaseMs));
    if (epoch === null) {
      this.keeping = false;
      const lease = await tables.leaseHolder(LEASE);
      logger.debug({ rotation: 'pass', lease }, 'rotation pass skipped: another relay holds the lease');
      return { ran: false, applied: [] };
    }
    if (epoch !== this.fence.epoch) logger.info({ rotation: 'lease', holder: this.holder, epoch }, 'this relay runs the rotation now');
    this.fence = { lease: LEASE, epoch };
    this.keeping = true;
    await this.retryUnpublished();
    const keys = store.list();
    const servers = await this.observeDns(keys, started);
    const now = this.now();
    await this.mustRenew(now);
    const planned = plan({
      now,
      keys,
      policy: (domain) => this.policy(domain),
      servers: (domain) => servers.get(domain) ?? [],
      observations: await tables.observations(),
      notified: await tables.notified(),
      oldestQueued: (keyId) => {
        const key = keys.find((k) => k.id === keyId);
        const oldest = key && this.options.queue?.oldestSignedWith(key.domain, key.selector);
        return oldest ? new Date(oldest) : undefined;
      },
      // With a shared store, the others' queues too: a key is not revoked while mail it signed waits on any relay.
      ...(store.engine === 'postgres' ? { peers: (store as PgKeyStore).peers() } : {}),
    });
    this.tellHeld(planned.next);
    const applied: Action[] = [];
    for (const action of planned.actions) {
      if (this.stopped) break;
      await this.mustRenew(this.now());
      if (await this.apply(action, now)) applied.push(action);
    }
    await tables.forgetNotifications(planned.resolved, this.fence);
    this.sweep();
    return { ran: true, applied };
  }

  /** Logs what holds a due revocation back (mail still queued, a silent relay) when it changes, not at every pass. */
  private tellHeld(next: readonly NextStep[]): void {
    const held = new Map(next.filter((n) => n.step === 'revoke' && n.at === null).map((n) => [n.keyId, n]));
    for (const [keyId, n] of held)
      if (this.held.get(keyId) !== n.text) this.options.logger.info({ rotation: 'held', domain: n.domain, selector: n.selector }, n.text);
    this.held = new Map([...held].map(([keyId, n]) => [keyId, n.text]));
  }

  private delegation(domain: string): Delegation | undefined {
    return delegationFor(this.options.config.dns.delegation, domain);
  }

  private policy(domain: string): RotationPolicy {
    return policyFor(this.options.config.rotation, domain, this.delegation(domain));
  }

  /** Renews the lease at the pass's epoch; another epoch means another relay held it in between. */
  private async mustRenew(now: Date): Promise<void> {
    const epoch = await this.tables!.takeLease(LEASE, this.holder, now, new Date(now.getTime() + this.leaseMs));
    if (epoch !== this.fence.epoch) throw new LeaseLost('the rotation lease passed to another relay during the pass; it carries on');
  }

  /** Asks every server of each domain about each key that must be published; returns the servers by domain. */
  private async observeDns(keys: readonly StoredKey[], now: Date): Promise<Map<string, string[]>> {
    const observer =
      this.options.observer?.() ??
      new LiveDnsObserver({
        resolvers: this.options.config.dns.resolvers,
        timeoutMs: this.options.config.dns.timeoutSeconds * 1000,
        delegation: (domain) => this.delegation(domain),
      });
    const published = keys.filter((k) => PUBLISHED_STATES.includes(k.state));
    const previous = new Map((await this.tables!.observations()).map((o) => [`${o.keyId} ${o.server}`, o]));
    const byDomain = new Map<string, string[]>();
    const rows: DnsObservation[] = [];
    const failures: string[] = [];
    for (const domain of new Set(published.map((k) => k.domain))) {
      try {
        const servers = await observer.servers(domain);
        const domainRows: DnsObservation[] = [];
        for (const key of published.filter((k) => k.domain === domain)) {
          const checks = await Promise.all(servers.map(async (server) => ({ server, ...(await observer.check(key, server)) })));
          for (const check of checks) domainRows.push(observe(previous.get(`${key.id} ${check.server}`), { keyId: key.id, ...check }, now));
        }
        byDomain.set(domain, servers);
        rows.push(...domainRows);
      } catch (err) {
        // No servers for this domain this pass: its keys wait, as when DNS does not answer.
        failures.push(`${domain}: ${causeOf(err)}`);
      }
    }
    await this.tables!.saveObservations(rows, this.fence);
    if (failures.length > 0) this.supervisor.failed('dns-observation', new Error(failures.join('; ')));
    else this.supervisor.succeeded('dns-observation');
    return byDomain;
  }

  /** Applies one planned step; false when it was no longer due (someone else took it). */
  private async apply(action: Action, now: Date): Promise<boolean> {
    const { store, logger } = this.options;
    const step = { by: 'scheduler' as const, why: action.why, at: now };
    const line = { rotation: action.kind, domain: action.domain, selector: action.selector, why: action.why };
    switch (action.kind) {
      case 'create': {
        const current = store.list(action.domain);
        const replaced = current.find((k) => k.id === action.replaces);
        const underway = current.some(
          (k) => k.state === 'pending' && k.algorithm === action.algorithm && replaced && sameChain(k, replaced) && k.createdAt >= replaced.createdAt,
        );
        if (!replaced || replaced.state !== 'active' || underway) return this.skipped(line);
        const key = await store.generate({
          domain: action.domain,
          ...(action.client ? { client: action.client } : {}),
          selector: action.selector,
          algorithm: action.algorithm,
          bits: action.bits,
          step: { ...step, fence: this.fence },
        });
        logger.info({ ...line, algorithm: key.algorithm, bits: key.bits }, 'rotation step: new key created, pending until DNS serves it');
        await this.publish(
          key,
          `A new DKIM key for ${key.domain} was created (${key.selector}, replacing ${replaced.selector}) and signs once every DNS server has served its record for ${duration(this.policy(key.domain).publishFor)} (rotation.publishFor).`,
        );
        return true;
      }
      case 'activate':
      case 'revoke':
      case 'remove': {
        if (!(await store.applyTransitions(action.transitions, this.fence))) return this.skipped(line);
        const retired = action.transitions.filter((t) => t.keyId !== action.keyId).map((t) => t.selector);
        logger.info(
          { ...line, ...(retired.length > 0 ? { retired } : {}) },
          `rotation step: key ${action.kind === 'activate' ? 'activated' : action.kind === 'revoke' ? 'revoked' : 'removed'}`,
        );
        const key = store.list(action.domain).find((k) => k.id === action.keyId)!;
        if (action.kind === 'revoke') {
          this.reveal(key);
          await this.publish(
            key,
            `The DKIM key ${key.selector} of ${key.domain} was revoked: its record must now be published with an empty p= so old signatures no longer verify.`,
          );
        }
        if (action.kind === 'remove') {
          await this.publish(key, `The DKIM key ${key.selector} of ${key.domain} was removed: its record can be deleted from DNS.`);
        }
        return true;
      }
      case 'notify': {
        if (this.options.config.rotation.notify) {
          // Not handed over (sync mode: the upstream refused or is down; queue mode: the spool is full): not
          // recorded either, so the next pass plans it again. Nothing else in the pass waits for it.
          if (
            !(await this.notify({
              to: this.options.config.rotation.notify,
              subject: `${action.domain} ${action.selector}: needs attention`,
              text: action.why,
              records: action.records,
            }))
          )
            return false;
        } else {
          // Said once, in the log: recorded as told like a notice mailed, so the next pass does not repeat it.
          logger.warn({ ...line, records: action.records.map((r) => r.name) }, 'rotation needs a person (set rotation.notify to be told by mail)');
        }
        await this.tables!.recordNotification(action.notice, action.keyId, now, this.fence);
        if (this.options.config.rotation.notify) logger.info(line, 'rotation step: notice sent');
        return true;
      }
    }
  }

  private skipped(line: object): false {
    this.options.logger.info(line, 'rotation step skipped: already taken');
    return false;
  }

  /**
   * Makes DNS serve what the key's new state says: through the publisher of
   * its zone when dns.publish lists one; else a person is told what to
   * publish or delete.
   */
  private async publish(key: StoredKey, text: string): Promise<void> {
    const { logger, config } = this.options;
    const how = key.state === 'removed' ? 'withdraw' : 'publish';
    // A removed key's record to delete is the one it had last: the revoked one.
    const record = keyRecord(how === 'withdraw' ? { ...key, state: 'revoked' } : key, this.delegation(key.domain));
    const line = { rotation: how, domain: key.domain, selector: key.selector, name: record.name };
    const outcome = await this.change(key, this.now());
    if (outcome === 'published') return logger.info(line, how === 'publish' ? 'DNS record published' : 'DNS record withdrawn');
    if (outcome === 'failed') return;
    logger.warn({ ...line, value: record.value }, how === 'publish' ? 'publish this DNS record by hand' : 'delete this DNS record by hand');
    // Whether or not it is handed over, the step is done: the record is shown by `keys dns`, and a key
    // that stays unpublished is notified again later (rotation.stuckAfter).
    if (config.rotation.notify)
      await this.notify({
        to: config.rotation.notify,
        subject: `${how === 'publish' ? 'publish' : 'delete'} ${record.name}`,
        text,
        records: [record],
        withdraw: how === 'withdraw',
      });
  }

  /**
   * Applies the key's DNS changes. The row in dns_unpublished is written
   * before the try, so neither a failure nor a stop in the middle loses the
   * change: the next pass applies it again (the changes are safe to repeat).
   */
  private async change(key: StoredKey, at: Date): Promise<'published' | 'manual' | 'failed'> {
    const tables = this.tables!;
    await tables.markUnpublished(key.id, at, 'not applied yet', this.fence);
    let outcome: 'published' | 'manual';
    try {
      outcome = await this.publisher.apply(changesFor(key, this.delegation(key.domain)));
    } catch (err) {
      const reason = String((err as Error).message ?? err).split('\n')[0]!;
      await tables.markUnpublished(key.id, at, reason, this.fence);
      this.options.logger.error(
        { rotation: 'publish', domain: key.domain, selector: key.selector, state: key.state, err: reason },
        'could not change DNS; tried again at the next check',
      );
      return 'failed';
    }
    await tables.clearUnpublished(key.id, this.fence);
    return outcome;
  }

  /** The changes a former pass could not apply, tried again as the keys' states now say. */
  private async retryUnpublished(): Promise<void> {
    const keys = new Map(this.options.store.list().map((k) => [k.id, k]));
    for (const row of await this.tables!.unpublished()) {
      if (this.stopped) return;
      const key = keys.get(row.keyId);
      if (!key) {
        await this.tables!.clearUnpublished(row.keyId, this.fence);
        continue;
      }
      if ((await this.change(key, new Date(row.since))) === 'published') {
        this.options.logger.info(
          { rotation: 'publish', domain: key.domain, selector: key.selector, state: key.state, since: row.since },
          'DNS change applied at a later try',
        );
      }
    }
  }

  /**
   * Hands a notice over; false when it was not (the supervisor logs why, as
   * notice-mail). Never throws: a notice never stops a rotation pass.
   */
  private async notify(notice: RotationNotice): Promise<boolean> {
    return (
      (await this.supervisor.run('notice-mail', async () => {
        await this.mail(notice);
        return true;
      })) === true
    );
  }

  /** A notice, signed and self-checked by the pipeline like any message, handed over as the relay's own mail. Throws when it was not. */
  private async mail(notice: RotationNotice): Promise<void> {
    const sent = await this.options.mail.send(noticeMessage(notice), notice.to);
    if ('refused' in sent) throw new Error(`the pipeline refused it: ${sent.refused}`);
    this.options.logger.info({ rotation: 'mail', to: notice.to, subject: notice.subject, ...sent }, 'rotation notice handed over');
  }

  private reveal(key: StoredKey): void {
    const dir = this.options.config.rotation.revealPrivateKeys;
    // A key in a PKCS#11 token cannot leave it: there is nothing to publish (its objects are destroyed at removal).
    if (!dir || key.state !== 'revoked' || key.material === 'pkcs11') return;
    try {
      const file = revealPrivateKey(dir, key, () => this.options.store.privatePem(key));
      if (file) this.options.logger.info({ rotation: 'reveal', domain: key.domain, selector: key.selector, file }, 'private key of a revoked key published');
    } catch (err) {
      this.options.logger.error(
        { rotation: 'reveal', domain: key.domain, selector: key.selector, err: (err as Error).message },
        'could not publish the private key of a revoked key',
      );
    }
  }

  /** Finishes what a crash may have interrupted: files of removed keys, private keys of revoked ones. */
  private sweep(): void {
    const { store, logger } = this.options;
    for (const file of store.deleteRemovedFiles()) logger.info({ rotation: 'remove', file }, 'key file of a removed key deleted');
    for (const key of store.list()) if (key.state === 'revoked') this.reveal(key);
  }
}
