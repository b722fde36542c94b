// The queue manager (Postfix's qmgr and smtp in one loop): takes the
// messages that are due, at most `workers` at a time, delivers each once to
// the upstream for all its due recipients, and records every recipient's own
// result. Failures notify the sender (DSN), finished messages leave the
// spool: rows first, then the file (see QueueIndex.remove).
//
// It wakes when a message is committed (fresh mail goes out at once), when
// another process changed the queue (`queue flush`, `release`: at once, as
// postqueue -f) and on a timer for the next retry. What to do with each reply is decided apart,
// in outcomes.ts.
import { statSync } from 'node:fs';
import { NoticeRate } from '../bounce/notice-rate.ts';
import { durationSeconds } from '../config/duration.ts';
import type { Envelope, Upstream } from '../delivery/upstream.ts';
import { fileOctets, heldOctets, type Octets } from '../message/octets.ts';
import type { RcptDsn } from '../smtp/nodemailer-internals.ts';
import type { Logger } from '../common/logger.ts';
import { metrics } from '../observability/metrics.ts';
import { Supervisor } from '../common/supervisor.ts';
import { replyLine, type SmtpReply } from '../smtp/reply.ts';
import { retryDelay, type RetryPolicy } from './backoff.ts';
import { sendNotices, type NoticeDeps, type NoticeItem } from './notices.ts';
import { decideOutcomes, postponedForNotices, type RecipientResult } from './outcomes.ts';
import type { Claim, QueuedMessage, QueueIndex } from './queue-index.ts';
import { HOLD_FILE_MISSING } from './recovery.ts';
import type { Spool } from './spool.ts';
import { SpaceReclaimer } from './space-reclaim.ts';

export interface ManagerOptions {
  spool: Spool;
  index: QueueIndex;
  upstream: Upstream;
  logger: Logger;
  policy: RetryPolicy;
  notices: Omit<NoticeDeps, 'queue' | 'logger' | 'now' | 'maxAgeMs' | 'rate'>;
  /** Attempts at once. */
  workers: number;
  /** How long files stay in corrupt/ (queue.corruptRetention); default: kept for ever. */
  corruptRetentionMs?: number;
  now?: () => number;
  random?: () => number;
  /** How often queue.db is asked whether another writer committed (default WATCH_MS); tests stretch it to prove a wake. */
  watchMs?: number;
  /** Where the loop's own failures (queue-maintenance) and notices that could not be queued (notice-mail) are reported. */
  supervisor?: Supervisor;
}

/** Where a delivered (or deferred, or bounced) recipient's time went, in milliseconds, for its log line. */
interface AttemptDelays {
  /** From the 250 that took the message in to the start of this attempt: earlier attempts and back-off included. */
  queue: number;
  /** This attempt: reaching the next hop (a connection kept open, or a new one) and the transaction, to its last reply. */
  attempt: number;
}

/** How long a claim holds its recipients: far beyond one attempt; a crashed process's claims are also freed at start-up. */
const LEASE_MS = 15 * 60_000;
/** Longest sleep between looks at the queue. */
const MAX_SLEEP_MS = 60_000;
/**
 * How often queue.db is asked whether another process committed. Chosen over
 * a signal (needs the relay's pid, and the right to signal it) and a watched
 * file (inotify misses changes on some file systems): it sees every writer,
 * whoever runs it, and costs one read of SQLite's shared-memory header.
 */
const WATCH_MS = 250;
/** After an unexpected error of the loop itself, wait this long before looking again. */
const ERROR_PAUSE_MS = 5_000;
/**
 * How often the whole queue is searched for finished messages left behind
 * (an attempt removes its own message when it finishes it): the search reads
 * every message, too much to do after every attempt.
 */
const SWEEP_MS = 60_000;
/** How often corrupt/ is looked at for files past queue.corruptRetention. */
const CORRUPT_SWEEP_MS = 60 * 60_000;

export class QueueManager {
  readonly #o: ManagerOptions;
  readonly #now: () => number;
  readonly #random: () => number;
  /** Claims of attempts that failed on the relay's side (a full disk, say), handed back once the index takes writes again. */
  readonly #failedClaims: Claim[] = [];
  readonly #supervisor: Supervisor;
  /** An attempt failed unexpectedly since the loop last looked: a look that works is not yet a recovery. */
  #attemptFailed = false;
  readonly #inFlight = new Set<Promise<void>>();
  /** Fresh messages claimed as intake recorded them, not yet attempted: at most the free workers' worth. */
  #fresh: Claim[] = [];
  /** Notices per address, over every attempt of this process (made at the first notice). */
  #noticeRate: NoticeRate | undefined;
  #timer: NodeJS.Timeout | undefined;
  #watch: NodeJS.Timeout | undefined;
  #running = false;
  #pumping = false;
  #again = false;
  readonly #space: SpaceReclaimer;
  #sweptAt = -Infinity;
  #corruptSweptAt = -Infinity;

  constructor(options: ManagerOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#supervisor = options.supervisor ?? new Supervisor({ logger: options.logger });
    this.#space = new SpaceReclaimer({
      index: options.index,
      logger: options.logger,
      failed: (err) => this.#supervisor.failed('queue-space', err),
      succeeded: () => this.#supervisor.succeeded('queue-space'),
    });
  }

  start(): void {
    this.#running = true;
    this.#o.index.claimOnIntake({
      leaseMs: LEASE_MS,
      room: () => (this.#running ? this.#o.workers - this.#inFlight.size - this.#fresh.length : 0),
      take: (claims) => {
        this.#fresh.push(...claims);
        this.wake();
      },
    });
    this.#o.index.changedElsewhere();
    this.#watch = setInterval(() => this.#wakeOnOtherWriters(), this.#o.watchMs ?? WATCH_MS);
    this.#watch.unref();
    this.#space.start();
    this.wake();
  }

  #wakeOnOtherWriters(): void {
    try {
      if (this.#o.index.changedElsewhere()) this.wake();
    } catch (err) {
      // The 60 s timer still looks; one line, not one per tick.
      clearInterval(this.#watch);
      this.#o.logger.warn(
        { err: (err as Error).message },
        'queue manager: cannot watch queue.db for changes by the queue command; they take effect within a minute',
      );
    }
  }

  /** Look at the queue now (a message was accepted, or an administrator asked). */
  wake(): void {
    if (!this.#running) return;
    if (this.#pumping) {
      this.#again = true;
      return;
    }
    this.#pumping = true;
    setImmediate(() => this.#pump());
  }

  /**
   * Takes no more work; attempts in flight get `timeoutMs` to finish. What
   * is still running then is left to its lease: the next start makes those
   * recipients due again (RFC 5321 §6.1 prefers a duplicate to a loss).
   */
  async stop(timeoutMs: number): Promise<void> {
    this.#running = false;
    clearTimeout(this.#timer);
    clearInterval(this.#watch);
    this.#space.stop();
    this.#o.index.claimOnIntake(undefined);
    this.#releaseFresh();
    if (this.#inFlight.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
    const done = await Promise.race([Promise.allSettled([...this.#inFlight]).then(() => 'done' as const), deadline]);
    clearTimeout(timer);
    if (done === 'timeout') this.#o.logger.warn({ attempts: this.#inFlight.size }, 'stopping: delivery attempts still running are left for the next start');
  }

  #pump(): void {
    this.#again = false;
    try {
      const free = this.#o.workers - this.#inFlight.size;
      this.#releaseFailedClaims();
      if (this.#running && free > 0) {
        const fresh = this.#takeFresh(free);
        for (const claim of fresh) this.#track(this.#attempt(claim), claim);
        if (free > fresh.length) {
          for (const claim of this.#o.index.claimDue({ limit: free - fresh.length, leaseMs: LEASE_MS })) this.#track(this.#attempt(claim), claim);
        }
      }
      if (this.#now() - this.#sweptAt >= SWEEP_MS) this.#sweep();
      if (this.#now() - this.#corruptSweptAt >= CORRUPT_SWEEP_MS) this.#sweepCorrupt();
      this.#schedule();
      if (!this.#attemptFailed) this.#supervisor.succeeded('queue-maintenance');
      this.#attemptFailed = false;
    } catch (err) {
      // Looked at again shortly.
      this.#supervisor.failed('queue-maintenance', err);
      this.#sleep(ERROR_PAUSE_MS);
    } finally {
      this.#pumping = false;
      if (this.#again) this.wake();
    }
  }

  /**
   * Up to `limit` claims made at intake. One that waited past half its lease
   * is handed back to the index rather than attempted: it might still run
   * when the lease ends and the index hands its recipients out again.
   */
  #takeFresh(limit: number): Claim[] {
    const taken = this.#fresh.splice(0, limit);
    const stale = taken.filter((claim) => claim.leaseUntil - this.#now() <= LEASE_MS / 2);
    for (const claim of stale) this.#o.index.releaseClaim(claim);
    return stale.length === 0 ? taken : taken.filter((claim) => !stale.includes(claim));
  }

  /** Claims made at intake and not attempted, given back at stop: due at once at the next start, or to another process. */
  #releaseFresh(): void {
    const fresh = this.#fresh;
    this.#fresh = [];
    try {
      for (const claim of fresh) this.#o.index.releaseClaim(claim);
    } catch (err) {
      // Start-up recovery makes every `delivering` recipient due again.
      this.#o.logger.warn({ err: (err as Error).message, claims: fresh.length }, 'stopping: claims not handed back; they are due again at the next start');
    }
  }

  #track(attempt: Promise<void>, claim: Claim): void {
    const tracked = attempt
      .catch((err: unknown) => {
        // Its recipients are handed back by the back-off, not left to the lease (a quarter of an hour).
        this.#failedClaims.push(claim);
        this.#attemptFailed = true;
        this.#supervisor.failed('queue-maintenance', err);
      })
      .finally(() => {
        this.#inFlight.delete(tracked);
        this.wake();
      });
    this.#inFlight.add(tracked);
  }

  /**
   * The recipients of a failed attempt wait for the first retry interval, as
   * after a temporary failure: some may have been delivered without the
   * result being recorded, and sooner would send them again and again for as
   * long as the disk stays full. A release that fails is tried at the next pump.
   */
  #releaseFailedClaims(): void {
    while (this.#failedClaims.length > 0) {
      this.#o.index.releaseClaim(this.#failedClaims[0]!, this.#now() + retryDelay(1, this.#o.policy, this.#random));
      this.#failedClaims.shift();
    }
  }

  #schedule(): void {
    if (!this.#running) return;
    if (this.#inFlight.size >= this.#o.workers) return; // the end of an attempt wakes the loop
    const due = this.#o.index.nextDueAt();
    this.#sleep(due === null ? MAX_SLEEP_MS : Math.max(0, Math.min(due - this.#now(), MAX_SLEEP_MS)));
  }

  #sleep(ms: number): void {
    clearTimeout(this.#timer);
    if (!this.#running) return;
    this.#timer = setTimeout(() => this.wake(), ms);
    this.#timer.unref();
  }

  /** One message, all its claimed recipients, in one transaction: each RCPT TO carries its own DSN parameters. */
  async #attempt(claim: Claim): Promise<void> {
    const { index, spool, upstream, logger } = this.#o;
    const { message } = claim;
    const startedAt = this.#now();
    let original: Octets;
    try {
      // A small message is in the index (a claim made at intake has it already); a file is read
      // afresh, chunk by chunk, by each transaction: a large message is never held whole. Its size
      // from stat(2) on the event loop (an inode just written and cached, microseconds): through the
      // thread pool the attempt would first wait for a thread and for the loop's next turn.
      const inIndex = message.storedIn === 'index' ? (claim.octets ?? index.octets(message.id)) : undefined;
      if (message.storedIn === 'index' && !inIndex) throw new Error('its octets are gone from the index');
      original = inIndex ? heldOctets(inIndex) : fileOctets(spool.path(message.id), 0, statSync(spool.path(message.id)).size);
    } catch (err) {
      index.releaseClaim(claim);
      index.hold(message.id, HOLD_FILE_MISSING);
      logger.error({ id: message.id, err: (err as Error).message }, 'message file unreadable: message held; restore the file and release it, or delete it');
      return;
    }
    const recipients = claim.recipients;
    // What the upstream replaces should a connection need the message signed again.
    const signedBy = claim.signatures;
    const envelope: Envelope = { from: message.sender, to: recipients.map((r) => r.address), dsn: dsnOf(message, recipients) };
    let answer: Awaited<ReturnType<Upstream['deliver']>>;
    try {
      answer = await upstream.deliver(envelope, original, signedBy);
    } catch (err) {
      logger.error({ id: message.id, err: (err as Error).message }, 'upstream delivery threw; the recipients are deferred');
      answer = { code: 451, enhanced: '4.3.0', text: 'Local error while delivering', recipients: [] };
    }
    const delays: AttemptDelays = { queue: startedAt - message.receivedAt, attempt: this.#now() - startedAt };
    const replies = new Map<number, SmtpReply>(recipients.map((r, i) => [r.seq, answer.recipients[i]?.reply ?? answer]));
    const results = decideOutcomes({ receivedAt: message.receivedAt, now: this.#now(), recipients, replies }, this.#o.policy, this.#random);
    // Delivered recipients are recorded as soon as the 250 is in, before any notice is built: until
    // that commit, a crash sends them again (RFC 5321 §6.1), so that time is kept to the rest of this
    // turn of the event loop (recordFinalSoon): sharing the intake's group commit, which waits for a
    // disk, tripled the duplicates of bench/crash.ts (0.10 % → 0.25-0.29 %).
    const delivered = results.filter((r) => r.outcome.result === 'delivered');
    const pending = results.filter((r) => r.outcome.result !== 'delivered');
    if (delivered.length > 0) await this.#record(claim, delivered, pending.length === 0, delays);
    if (pending.length > 0) await this.#recordPending(claim, original, pending, delays);
  }

  /** Notices first (bounces, delay warnings), then the results of the recipients not delivered. */
  async #recordPending(claim: Claim, original: Octets, pending: RecipientResult[], delays: AttemptDelays): Promise<void> {
    const { index, spool, logger } = this.#o;
    const { message } = claim;

    const items: NoticeItem[] = [];
    for (const r of pending) {
      if (r.outcome.result === 'bounced') items.push({ recipient: r.recipient, action: 'failed', reply: r.outcome.reply, expired: r.expired });
      else if (r.warnDelay) items.push({ recipient: r.recipient, action: 'delayed', reply: r.outcome.reply, expired: false });
    }
    if (items.length > 0) {
      try {
        // Before the results are recorded: a crash in between sends a notice twice, never not at all.
        await sendNotices(
          { ...this.#o.notices, queue: { spool, index }, logger, now: this.#now, maxAgeMs: this.#o.policy.maxAgeMs, rate: this.#rate() },
          message,
          original,
          items,
        );
        this.#supervisor.succeeded('notice-mail');
      } catch (err) {
        this.#supervisor.failed('notice-mail', err);
        // Made due again at once, such a message would be attempted in a tight loop for as long as
        // the spool stays full: it waits by the back-off instead, with one line for the cause.
        const why = (err as Error).message;
        const outcomes = postponedForNotices(pending, why, this.#now(), this.#o.policy, this.#random);
        index.record(claim, outcomes);
        const next = Math.min(...outcomes.map((o) => o.nextAttemptAt));
        logger.error(
          { id: message.id, err: why, recipients: outcomes.length, next: new Date(next).toISOString() },
          'delivery status notification could not be queued; the recipients wait for their next attempt',
        );
        return;
      }
    }
    await this.#record(claim, pending, true, delays);
    const warned = pending.filter((r) => r.warnDelay).map((r) => r.recipient.seq);
    if (warned.length > 0) index.markDelayWarned(message.id, warned);
  }

  #rate(): NoticeRate {
    const { maxPerAddress, addressWindow } = this.#o.notices.config.bounce;
    return (this.#noticeRate ??= new NoticeRate({ max: maxPerAddress, windowMs: durationSeconds(addressWindow) * 1000 }));
  }

  /**
   * Commits these recipients' results, then counts and logs them. The last
   * results of an attempt are committed at the end of this turn of the event
   * loop, with those of other attempts ending in it, and remove the message
   * in that transaction when it leaves no recipient waiting, and then its file.
   */
  async #record(claim: Claim, results: RecipientResult[], last: boolean, delays: AttemptDelays): Promise<void> {
    const { index, upstream, logger } = this.#o;
    const { message } = claim;
    const outcomes = results.map((r) => r.outcome);
    const finished = last ? await index.recordFinalSoon(claim, outcomes) : (index.record(claim, outcomes), null);
    const domain = claim.signingDomain;
    for (const { outcome } of results) {
      if (outcome.result === 'delivered') metrics.delivered(domain, (this.#now() - message.receivedAt) / 1000);
      else metrics[outcome.result](domain);
    }
    for (const r of results) {
      const o = r.outcome;
      logger[o.result === 'delivered' ? 'info' : 'warn'](
        {
          id: message.id,
          to: r.recipient.address,
          result: o.result,
          attempts: r.recipient.attempts + 1,
          reply: replyLine(o.reply),
          next: o.result === 'deferred' ? new Date(o.nextAttemptAt).toISOString() : undefined,
          expired: r.expired || undefined,
          upstream: upstream.name,
          delays,
        },
        `recipient ${o.result}`,
      );
    }
    if (finished) this.#removed(message, finished);
  }

  /** Rows removed, then the file, once every recipient is delivered or bounced. */
  #removeIfFinished(id: string): void {
    const { index } = this.#o;
    const finished = index.finishedCounts(id);
    const message = index.show(id);
    if (!finished || !message || !index.removeFinished(id)) return;
    this.#removed(message, finished);
  }

  /** A message whose rows are gone: its file too, when it has one (the index's octets went with the rows). */
  #removed(message: QueuedMessage, finished: { delivered: number; bounced: number }): void {
    const { spool, logger } = this.#o;
    const { id } = message;
    if (message.storedIn === 'file')
      spool
        .delete(id)
        .catch((err: Error) => logger.warn({ id, err: err.message }, 'finished message file not removed; start-up recovery moves it to corrupt/'));
    logger.info({ id, ...finished }, 'message removed from the queue');
  }

  /** Files in corrupt/ past queue.corruptRetention: removed, with one log line per look that removed any. */
  #sweepCorrupt(): void {
    this.#corruptSweptAt = this.#now();
    const retentionMs = this.#o.corruptRetentionMs;
    if (retentionMs === undefined) return;
    const { spool, logger } = this.#o;
    spool.removeOldCorrupt(this.#now(), retentionMs).then(
      (removed) => {
        if (removed.length > 0)
          logger.info(
            { dir: `${spool.dir}/corrupt`, removed: removed.length, files: removed.slice(0, 20), retentionHours: retentionMs / 3_600_000 },
            'corrupt/ files older than queue.corruptRetention removed',
          );
      },
      (err: Error) => logger.warn({ dir: `${spool.dir}/corrupt`, err: err.message }, 'could not remove old files from corrupt/; tried again in an hour'),
    );
  }

  /** Finished messages no attempt removed (its process stopped in between). */
  #sweep(): void {
    this.#sweptAt = this.#now();
    for (const id of this.#o.index.finishedMessages(100)) this.#removeIfFinished(id);
  }
}

function dsnOf(message: Claim['message'], recipients: Claim['recipients']): Envelope['dsn'] {
  const own = new Map<string, RcptDsn>();
  for (const r of recipients) if (r.notify || r.orcpt) own.set(r.address, { notify: r.notify ?? undefined, orcpt: r.orcpt ?? undefined });
  const dsn = { ret: message.ret ?? undefined, envid: message.envid ?? undefined, recipients: own.size > 0 ? own : undefined };
  return Object.values(dsn).some((v) => v !== undefined) ? dsn : undefined;
}
