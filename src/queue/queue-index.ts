// The queue index (queue.db in the spool directory): one row per accepted
// message and one per recipient, the way ZoneMTA keeps one delivery record
// per recipient beside a body stored once.
//
// Durability order on intake: a small message's octets are committed here
// with its rows; a larger one's file is first fsynced and renamed into msg/,
// and msg/ fsynced (Spool.write), then its rows are committed here; only then
// may the client be told 250. The database runs in WAL mode with
// synchronous=FULL, so a commit has reached the disk when it returns; several
// messages arriving together share one commit (GroupCommit).
import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import { prepareKeptFile, SQLITE_SIBLINGS } from '../common/file-create.ts';
import { FileSync, fsyncWal } from './file-sync.ts';
import { GroupCommit, type GroupCommitOptions } from './group-commit.ts';
import { migrateQueue } from './queue-schema.ts';
import { spoolError } from '../common/spool-error.ts';
import type { SmtpReply } from '../smtp/reply.ts';

export type RecipientState = 'queued' | 'delivering' | 'delivered' | 'deferred' | 'bounced';
export const FINAL_STATES: readonly RecipientState[] = ['delivered', 'bounced'];

export interface NewRecipient {
  address: string;
  /** RFC 3461 ORCPT, as given ("rfc822;a@example.com"). */
  orcpt?: string | undefined;
  /** RFC 3461 NOTIFY: ['NEVER'] or some of SUCCESS, FAILURE, DELAY; undefined when not given. */
  notify?: string[] | undefined;
}

export interface NewMessage {
  /** The spool id the file was written under. */
  id: string;
  size: number;
  /** Milliseconds since the epoch; default: the index's clock. */
  receivedAt?: number;
  /** Envelope sender; '' for <>. */
  sender: string;
  /** Who handed it over, e.g. "192.0.2.10" or "exchange@192.0.2.10". */
  client: string;
  /** The d= and s= of every signature the file carries. */
  signatures: { domain: string; selector: string }[];
  ret?: 'FULL' | 'HDRS' | undefined;
  envid?: string | undefined;
  /**
   * The domains the client was held to (clients[].domains) at intake: a
   * notice goes only to an envelope sender in one of them. Undefined or
   * null: the client could use any sender.
   */
  senderDomains?: readonly string[] | null | undefined;
  recipients: NewRecipient[];
  /**
   * The message itself, kept in the index (see INLINE_MAX_SIZE): one Buffer,
   * or its parts in order, Buffers never written to again; undefined: it is
   * the spool file.
   */
  octets?: Buffer | readonly Buffer[];
}

export interface QueuedMessage {
  id: string;
  receivedAt: number;
  sender: string;
  size: number;
  client: string;
  ret: 'FULL' | 'HDRS' | null;
  envid: string | null;
  /** null when not held, else why. */
  hold: string | null;
  /** The domains a notice may go to (see NewMessage.senderDomains); null: any. */
  senderDomains: string[] | null;
  /** Where the octets are: in the index (octets()), or in the spool file msg/<id>.eml. */
  storedIn: 'index' | 'file';
}

export interface QueuedRecipient {
  seq: number;
  address: string;
  orcpt: string | null;
  notify: string[] | null;
  state: RecipientState;
  attempts: number;
  /** When it is next due; while delivering, when the claim's lease ends. */
  nextAttemptAt: number;
  lastReply: SmtpReply | null;
  delayWarnedAt: number | null;
  updatedAt: number;
}

export interface MessageDetail extends QueuedMessage {
  signatures: { domain: string; selector: string }[];
  recipients: QueuedRecipient[];
}

export interface MessageSummary extends QueuedMessage {
  recipients: number;
  /** Recipients not yet delivered or bounced. */
  pending: number;
  /** Earliest next attempt among the pending recipients. */
  nextAttemptAt: number | null;
}

/** Recipients of one message taken for one delivery attempt. */
export interface Claim {
  token: string;
  message: QueuedMessage;
  recipients: QueuedRecipient[];
  leaseUntil: number;
  /** The d= of the message's first signature, or null when it went unsigned: for the metrics. */
  signingDomain: string | null;
  /** The d= and s= of every signature the message carries, by domain then selector. */
  signatures: { domain: string; selector: string }[];
  /** A claim made at intake of a message kept in the index: its octets, as committed, not read back. */
  octets?: Buffer | readonly Buffer[];
}

/**
 * Who takes fresh messages as claims in the transaction that records them
 * (the queue manager): a message committed while there is room is never read
 * back to be claimed, and its rows, marked delivering under the claim's
 * lease, stay the record, so a crash leaves it due again as any claim does.
 */
export interface IntakeClaims {
  leaseMs: number;
  /** How many fresh messages may be claimed now. */
  room: () => number;
  /** The claims, once their transaction has committed. */
  take: (claims: Claim[]) => void;
}

export type AttemptOutcome =
  | { seq: number; result: 'delivered'; reply: SmtpReply }
  | { seq: number; result: 'deferred'; reply: SmtpReply; nextAttemptAt: number }
  | { seq: number; result: 'bounced'; reply: SmtpReply };

export interface QueueDepth {
  messages: number;
  /** Recipients not yet delivered or bounced. */
  pending: number;
  oldestReceivedAt: number | null;
}

export interface QueueIndexOptions {
  /** Milliseconds since the epoch. */
  now?: () => number;
  groupCommit?: GroupCommitOptions;
  /** Told after each intake transaction commits, with the ids it held. */
  onCommit?: (ids: string[]) => void;
  /** How long to wait for another process's write (the CLI's, the daemon's). Default 5000 ms. */
  busyTimeoutMs?: number;
  /** fsync of a file by its path (the WAL after each intake group); tests hold it back. */
  fsync?: (path: string) => Promise<void>;
}

interface MessageRow {
  id: string;
  received_at: number;
  sender: string;
  size: number;
  client: string;
  ret: 'FULL' | 'HDRS' | null;
  envid: string | null;
  hold: string | null;
  sender_domains: string | null;
  /** length(octets): NULL when the message is a file. */
  inline_size: number | null;
}

/**
 * A message's columns without its octets, which are read only to deliver
 * it: length() of a blob reads no more than the row's header.
 */
const MESSAGE_COLUMNS = `m.id, m.received_at, m.sender, m.size, m.client, m.ret, m.envid, m.hold, m.sender_domains, length(m.octets) AS inline_size`;

interface RecipientRow {
  seq: number;
  address: string;
  orcpt: string | null;
  notify: string | null;
  state: RecipientState;
  attempts: number;
  next_attempt_at: number;
  last_code: number | null;
  last_enhanced: string | null;
  last_text: string | null;
  delay_warned_at: number | null;
  updated_at: number;
}

const PENDING = `state IN ('queued', 'deferred', 'delivering')`;

/**
 * The message of each due recipient, earliest due first, read from the
 * recipients_due index: a claim reads the due rows until it has found
 * enough messages, whatever the size of the queue (a day's backlog behind
 * a down upstream, or delivered recipients not yet removed).
 */
export const DUE_RECIPIENTS = `SELECT r.message_id FROM recipients r JOIN messages m ON m.id = r.message_id
  WHERE r.${PENDING} AND r.next_attempt_at <= ? AND m.hold IS NULL ORDER BY r.next_attempt_at`;

/** queue.db's pages (see QueueIndex.space). */
export interface DatabaseSpace {
  pageSize: number;
  pages: number;
  /** On SQLite's free list. */
  free: number;
  /** auto_vacuum = INCREMENTAL: free pages can be given back with reclaim(). */
  reclaimable: boolean;
}

/** The last results of an attempt, waiting for the transaction that records them (recordFinalSoon). */
interface FinalRecord {
  claim: Pick<Claim, 'token' | 'message'>;
  outcomes: AttemptOutcome[];
  /** Set by that transaction: what recordFinalSoon resolves to. */
  finished: { delivered: number; bounced: number } | null;
}

/** The WAL is cut back to this size (octets) whenever a checkpoint empties it. */
const WAL_SIZE_LIMIT = 64 * 1024 * 1024;

export class QueueIndex {
  readonly file: string;
  readonly db: Database.Database;
  readonly #now: () => number;
  readonly #batcher: GroupCommit<NewMessage>;
  readonly #finals: GroupCommit<FinalRecord>;
  readonly #onCommit: ((ids: string[]) => void) | undefined;
  readonly #walSync: FileSync;
  readonly #statements = new Map<string, Database.Statement>();
  /** The connection's `synchronous` setting, switched only when a write needs the other one. */
  #synchronous: 'FULL' | 'NORMAL' = 'FULL';
  #dataVersion: number | undefined;
  #intakeClaims: IntakeClaims | undefined;
  /**
   * One transaction wrapper for every write, made once: better-sqlite3's
   * db.transaction() builds four wrapper functions each time it is called,
   * which cost more than some of the transactions themselves.
   */
  readonly #transaction: Database.Transaction<(body: () => unknown) => unknown>;

  private constructor(file: string, db: Database.Database, options: QueueIndexOptions) {
    this.file = file;
    this.db = db;
    this.#now = options.now ?? Date.now;
    this.#onCommit = options.onCommit;
    this.#batcher = new GroupCommit((messages) => {
      this.#insert(messages, 'NORMAL', this.#intakeClaims);
      return this.#walSync.sync().catch((err: unknown) => {
        throw spoolError(err);
      });
    }, options.groupCommit);
    this.#walSync = new FileSync(`${file}-wal`, options.fsync ?? fsyncWal);
    this.#transaction = db.transaction((body: () => unknown) => body());
    this.#finals = new GroupCommit((records) =>
      this.#withoutFsync(() =>
        this.#immediate(() => {
          for (const r of records) r.finished = this.#recordFinal(r.claim, r.outcomes);
        }),
      ),
    );
  }

  /** Runs `body` in one BEGIN IMMEDIATE transaction (a savepoint inside another). */
  #immediate<T>(body: () => T): T {
    return this.#transaction.immediate(body) as T;
  }

  /** Opens (creating, mode 0600) the index file and brings its schema up to date. */
  static open(file: string, options: QueueIndexOptions = {}): QueueIndex {
    let db: Database.Database | undefined;
    try {
      // Created 0600 before SQLite opens it (-wal and -shm take its mode); none of them may be a link.
      prepareKeptFile(file, 0o600, SQLITE_SIBLINGS);
      db = new Database(file, { timeout: options.busyTimeoutMs ?? 5000 });
      // Only a new, empty file takes it (an older one: makeReclaimable): free pages can then be given back (space-reclaim.ts).
      db.pragma('auto_vacuum = INCREMENTAL');
      db.pragma('journal_mode = WAL');
      // A WAL a backlog made large is cut back to this when a checkpoint empties it.
      db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT}`);
      // FULL: in WAL mode NORMAL may lose the last commits on power loss, and a commit here stands for a 250 given.
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      migrateQueue(db, file);
      return new QueueIndex(file, db, options);
    } catch (err) {
      db?.close();
      throw spoolError(err);
    }
  }

  close(): void {
    this.#batcher.flush();
    this.#finals.flush();
    this.db.close();
  }

  /**
   * Records a message whose file is already durable in the spool. Resolves
   * once its rows are committed (together with whatever else arrived within
   * a few milliseconds) and on disk: then, and not before, the client may be
   * told 250. Rejects with SpoolUnavailableError when the disk is full or
   * read-only.
   *
   * The group is committed with synchronous=NORMAL, which writes its WAL
   * frames but does not wait for them to reach the disk; the WAL file is then
   * fsynced once for the group in the thread pool, as FULL would have done in
   * this thread. The effect is FULL's, while the sessions go on meanwhile:
   * that fsync was the largest single cost of the event loop under load.
   */
  enqueue(message: NewMessage): Promise<void> {
    return this.#batcher.add(message);
  }

  /**
   * queue.db's pages: all of them, and those on SQLite's free list (a
   * delivered message's pages go there and are reused by the next messages;
   * they go back to the file system only when given back, see reclaim).
   */
  space(): DatabaseSpace {
    const number = (pragma: string) => this.db.pragma(pragma, { simple: true }) as number;
    return { pageSize: number('page_size'), pages: number('page_count'), free: number('freelist_count'), reclaimable: number('auto_vacuum') === 2 };
  }

  /**
   * Gives up to `pages` free pages back to the file system (PRAGMA
   * incremental_vacuum: pages in use near the end of the file are moved into
   * free ones first, then the file is cut); the file shrinks at the next
   * checkpoint. Returns how many pages the database has fewer. Its loss in a
   * power cut would cost nothing but the step: written without an fsync.
   */
  reclaim(pages: number): number {
    if (!Number.isSafeInteger(pages) || pages <= 0) throw new Error(`reclaim: a positive page count, got ${pages}`);
    const before = this.db.pragma('page_count', { simple: true }) as number;
    this.#withoutFsync(() => this.db.pragma(`incremental_vacuum(${pages})`));
    return before - (this.db.pragma('page_count', { simple: true }) as number);
  }

  /** Copies the WAL into the database now, so that a reclaim's cut reaches the file. */
  checkpoint(): void {
    this.db.pragma('wal_checkpoint(PASSIVE)');
  }

  /**
   * Rewrites a queue.db made without incremental auto-vacuum (before this
   * release) so that its free pages can be given back; returns false when it
   * could already. VACUUM copies every page in use: run it at start-up, with
   * the spool's lock held, never beside a running relay.
   */
  makeReclaimable(): boolean {
    if (this.space().reclaimable) return false;
    this.db.pragma('auto_vacuum = INCREMENTAL');
    this.db.exec('VACUUM');
    return true;
  }

  /** Commits every commit waiting in the group now (before closing, in tests). */
  flush(): void {
    this.#batcher.flush();
    this.#finals.flush();
  }

  /** Records several messages in one transaction, synchronously and durably (synchronous=FULL). */
  enqueueMany(messages: NewMessage[]): void {
    this.#insert(messages, 'FULL');
  }

  /** Fresh messages are claimed for `taker` as they are recorded (see IntakeClaims); undefined stops it. */
  claimOnIntake(taker: IntakeClaims | undefined): void {
    this.#intakeClaims = taker;
  }

  /** `taker`: who is handed claims on these messages as they are recorded (intake only). */
  #insert(messages: NewMessage[], synchronous: 'FULL' | 'NORMAL', taker?: IntakeClaims): void {
    const now = this.#now();
    const room = Math.min(messages.length, Math.max(0, taker?.room() ?? 0));
    const leaseUntil = now + (taker?.leaseMs ?? 0);
    const insertMessage = this.#stmt(
      `INSERT INTO messages (id, received_at, sender, size, client, ret, envid, sender_domains, octets) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const insertSignature = this.#stmt(`INSERT OR IGNORE INTO message_signatures (message_id, domain, selector) VALUES (?, ?, ?)`);
    const insertRecipient = this.#stmt(
      `INSERT INTO recipients (message_id, seq, address, orcpt, notify, state, claim, next_attempt_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const claims: Claim[] = [];
    try {
      this.#setSynchronous(synchronous);
      this.#immediate(() => {
        messages.forEach((m, i) => {
          if (m.recipients.length === 0) throw new Error(`message ${m.id} has no recipients`);
          const receivedAt = m.receivedAt ?? now;
          insertMessage.run(
            m.id,
            receivedAt,
            m.sender,
            m.size,
            m.client,
            m.ret ?? null,
            m.envid ?? null,
            m.senderDomains ? m.senderDomains.join(' ') : null,
            m.octets === undefined ? null : oneBlob(m.octets),
          );
          for (const s of m.signatures) insertSignature.run(m.id, s.domain.toLowerCase(), s.selector);
          // A claim token only has to differ from every other: randomUUID draws from a cached batch of entropy, randomBytes makes a system call each.
          const token = i < room ? randomUUID() : null;
          const [state, next] = token ? (['delivering', leaseUntil] as const) : (['queued', now] as const);
          m.recipients.forEach((r, seq) => insertRecipient.run(m.id, seq, r.address, r.orcpt ?? null, r.notify?.join(',') ?? null, state, token, next, now));
          if (token) claims.push(freshClaim(m, token, receivedAt, now, leaseUntil));
        });
      });
    } catch (err) {
      throw spoolError(err);
    }
    this.#onCommit?.(messages.map((m) => m.id));
    if (claims.length > 0) taker!.take(claims);
  }

  /**
   * Takes up to `limit` messages that have recipients due (next attempt
   * reached, or a crashed attempt's lease run out), not held, and marks
   * those recipients `delivering` until now + leaseMs. Oldest due first.
   */
  claimDue(options: { limit: number; leaseMs: number }): Claim[] {
    const now = this.#now();
    const leaseUntil = now + options.leaseMs;
    const dueRecipients = this.#stmt(DUE_RECIPIENTS).pluck();
    // Under steady load every message is claimed at intake and none is due: a read says so
    // without the write lock and the commit that a transaction costs (two thirds of the call).
    if (dueRecipients.get(now) === undefined) return [];
    const message = this.#stmt(
      `SELECT ${MESSAGE_COLUMNS}, (SELECT domain FROM message_signatures WHERE message_id = m.id ORDER BY domain LIMIT 1) AS signing_domain
       FROM messages m WHERE m.id = ?`,
    );
    const take = this.#stmt(
      `UPDATE recipients SET state = 'delivering', claim = ?, next_attempt_at = ?, updated_at = ?
       WHERE message_id = ? AND ${PENDING} AND next_attempt_at <= ? RETURNING *`,
    );
    // A claim need not survive a crash: start-up makes every `delivering` recipient due again.
    return this.#withoutFsync(() =>
      this.#immediate(() => {
        const ids = new Set<string>();
        for (const id of dueRecipients.iterate(now) as IterableIterator<string>) {
          ids.add(id);
          if (ids.size >= options.limit) break;
        }
        return [...ids].map((id) => {
          const row = message.get(id) as MessageRow & { signing_domain: string | null };
          const token = randomUUID();
          const recipients = (take.all(token, leaseUntil, now, id, now) as RecipientRow[]).map(toRecipient).sort((a, b) => a.seq - b.seq);
          return { token, message: toMessage(row), recipients, leaseUntil, signingDomain: row.signing_domain, signatures: this.signaturesOf(id) };
        });
      }),
    );
  }

  /** A prepared statement, prepared once per SQL text: preparing costs more than running most of these. */
  #stmt(sql: string): Database.Statement {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  /**
   * Runs a write whose loss in a power cut does no harm without waiting for
   * the disk: its WAL frames reach the operating system (so a crash of this
   * process keeps them), and the next synchronous commit's fsync of the WAL
   * makes them durable too. NORMAL rather than OFF: a checkpoint this commit
   * may run still syncs the database file before the WAL is reused.
   */
  #withoutFsync<T>(write: () => T): T {
    this.#setSynchronous('NORMAL');
    return write();
  }

  /**
   * The setting stays as the last write left it: the writes that follow a
   * delivery in the daemon (hold, release, delay-warned marks) cost at worst
   * a repeated step if a power cut loses them, and the commits that stand
   * for a 250 make sure of the disk themselves (enqueue, enqueueMany).
   * Switching costs a statement, so it is done only on a change.
   */
  #setSynchronous(mode: 'FULL' | 'NORMAL'): void {
    if (this.#synchronous === mode) return;
    this.#stmt(`PRAGMA synchronous = ${mode}`).run();
    this.#synchronous = mode;
  }

  /**
   * Records the results of an attempt. Only recipients the claim still holds
   * change (an administrator may have deleted the message meanwhile);
   * returns how many did.
   *
   * Without waiting for the disk (see #withoutFsync): a crash of the process
   * keeps the result, and a power cut that loses it makes those recipients
   * due again, so it can cost a duplicate, never a message; the next intake
   * commit's fsync makes it durable anyway. Waiting for the disk here stalled
   * every session once per delivery.
   */
  record(claim: Pick<Claim, 'token' | 'message'>, outcomes: AttemptOutcome[]): number {
    const now = this.#now();
    const update = this.#stmt(
      `UPDATE recipients SET state = ?, attempts = attempts + 1, next_attempt_at = ?, claim = NULL,
         last_code = ?, last_enhanced = ?, last_text = ?, updated_at = ?
       WHERE message_id = ? AND seq = ? AND claim = ? AND state = 'delivering'`,
    );
    return this.#withoutFsync(() =>
      this.#immediate(() => {
        let changed = 0;
        for (const o of outcomes) {
          const next = o.result === 'deferred' ? o.nextAttemptAt : now;
          changed += update.run(o.result, next, o.reply.code, o.reply.enhanced ?? null, o.reply.text, now, claim.message.id, o.seq, claim.token).changes;
        }
        return changed;
      }),
    );
  }

  /**
   * record() for the last results of an attempt, and in the same
   * transaction the message's rows when it leaves no recipient waiting: the
   * caller then removes its file. Resolves to how many were delivered and
   * bounced when the message was removed, else null.
   *
   * The transaction holds the final results of every attempt that ends in
   * this turn of the event loop: a commit writes the pages it changed to the
   * WAL, and deliveries that end together change mostly the same pages (145
   * against 70 µs a message in groups of five). Waiting for the end of the
   * turn, not for a disk, keeps the time in which a crash sends a delivered
   * message again short.
   */
  recordFinalSoon(claim: Pick<Claim, 'token' | 'message'>, outcomes: AttemptOutcome[]): Promise<{ delivered: number; bounced: number } | null> {
    const record: FinalRecord = { claim, outcomes, finished: null };
    return this.#finals.add(record).then(() => record.finished);
  }

  #recordFinal(claim: Pick<Claim, 'token' | 'message'>, outcomes: AttemptOutcome[]): { delivered: number; bounced: number } | null {
    const id = claim.message.id;
    const finished = this.#finishesMessage(claim, outcomes) ?? (this.record(claim, outcomes), this.finishedCounts(id));
    return finished && this.remove(id) ? finished : null;
  }

  /**
   * The counts of a message these outcomes finish, when they are final and
   * are the results of every recipient still waiting (all held by this
   * claim): its rows are then removed without first being updated, which
   * would rewrite each index entry only to delete it. Otherwise null.
   */
  #finishesMessage(claim: Pick<Claim, 'token' | 'message'>, outcomes: AttemptOutcome[]): { delivered: number; bounced: number } | null {
    let delivered = 0;
    let bounced = 0;
    const seqs = new Set<number>();
    for (const o of outcomes) {
      if (o.result === 'delivered') delivered++;
      else if (o.result === 'bounced') bounced++;
      else return null;
      seqs.add(o.seq);
    }
    if (seqs.size !== outcomes.length) return null;
    const rows = this.#stmt(`SELECT seq, state, claim IS ? AS mine FROM recipients WHERE message_id = ?`).all(claim.token, claim.message.id) as {
      seq: number;
      state: RecipientRow['state'];
      mine: number;
    }[];
    let held = 0;
    for (const row of rows) {
      if (row.mine && row.state === 'delivering' && seqs.has(row.seq)) held++;
      else if (row.state === 'delivered') delivered++;
      else if (row.state === 'bounced') bounced++;
      else return null;
    }
    return held === seqs.size ? { delivered, bounced } : null;
  }

  /** Gives back recipients claimed and not finished (shutdown, an attempt that failed on the relay's side): due again at `nextAttemptAt`, at once by default; no attempt counted. */
  releaseClaim(claim: Pick<Claim, 'token' | 'message'>, nextAttemptAt = this.#now()): number {
    const now = this.#now();
    return this.#stmt(
      `UPDATE recipients SET state = CASE WHEN attempts = 0 THEN 'queued' ELSE 'deferred' END, claim = NULL, next_attempt_at = ?, updated_at = ?
         WHERE message_id = ? AND claim = ? AND state = 'delivering'`,
    ).run(nextAttemptAt, now, claim.message.id, claim.token).changes;
  }

  /** Start-up: no attempt survives a restart, so every `delivering` recipient is due again now. */
  resetDelivering(): number {
    const now = this.#now();
    return this.#stmt(
      `UPDATE recipients SET state = CASE WHEN attempts = 0 THEN 'queued' ELSE 'deferred' END, claim = NULL, next_attempt_at = ?, updated_at = ?
         WHERE state = 'delivering'`,
    ).run(now, now).changes;
  }

  /** Records that a delay warning (RFC 3464 action=delayed) went out for these recipients. */
  markDelayWarned(messageId: string, seqs: number[]): void {
    const now = this.#now();
    const update = this.#stmt(`UPDATE recipients SET delay_warned_at = ?, updated_at = ? WHERE message_id = ? AND seq = ?`);
    this.#immediate(() => {
      for (const seq of seqs) update.run(now, now, messageId, seq);
    });
  }

  /** Ids of messages whose every recipient is delivered or bounced, oldest first. */
  finishedMessages(limit: number): string[] {
    return this.#stmt(
      `SELECT id FROM messages m WHERE NOT EXISTS (
           SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.${PENDING}
         ) ORDER BY id LIMIT ?`,
    )
      .pluck()
      .all(limit) as string[];
  }

  /** How many recipients were delivered and bounced, once none waits; null while some do. */
  finishedCounts(id: string): { delivered: number; bounced: number } | null {
    const row = this.#stmt(
      `SELECT TOTAL(state = 'delivered') AS delivered, TOTAL(state = 'bounced') AS bounced, TOTAL(${PENDING}) AS pending
         FROM recipients WHERE message_id = ?`,
    ).get(id) as { delivered: number; bounced: number; pending: number };
    return row.pending > 0 ? null : { delivered: row.delivered, bounced: row.bounced };
  }

  /**
   * Removes a message's rows; the caller removes its file afterwards (rows
   * first: a file left by a crash is found and moved aside by recovery,
   * whereas rows without a file would be a message that cannot be sent).
   */
  remove(id: string): boolean {
    return this.#stmt(`DELETE FROM messages WHERE id = ?`).run(id).changes > 0;
  }

  /**
   * remove() for a message whose recipients are all delivered or bounced,
   * without waiting for the disk: those states were committed durably by
   * record(), so a removal a power cut loses costs nothing but a message
   * start-up recovery finds finished and removes again.
   */
  removeFinished(id: string): boolean {
    return this.#withoutFsync(() => this.remove(id));
  }

  /** The signatures the relay added to a message: d= and s= of each. */
  signaturesOf(id: string): { domain: string; selector: string }[] {
    return this.#stmt(`SELECT domain, selector FROM message_signatures WHERE message_id = ? ORDER BY domain, selector`).all(id) as {
      domain: string;
      selector: string;
    }[];
  }

  show(id: string): MessageDetail | undefined {
    const row = this.#stmt(`SELECT ${MESSAGE_COLUMNS} FROM messages m WHERE m.id = ?`).get(id) as MessageRow | undefined;
    if (!row) return undefined;
    const signatures = this.signaturesOf(id);
    const recipients = (this.#stmt(`SELECT * FROM recipients WHERE message_id = ? ORDER BY seq`).all(id) as RecipientRow[]).map(toRecipient);
    return { ...toMessage(row), signatures, recipients };
  }

  /** Messages oldest first, with recipient counts; `held` filters on being held. */
  list(options: { limit?: number; offset?: number; held?: boolean } = {}): MessageSummary[] {
    const where = options.held === undefined ? '' : options.held ? 'WHERE m.hold IS NOT NULL' : 'WHERE m.hold IS NULL';
    const rows = this.#stmt(
      `SELECT ${MESSAGE_COLUMNS}, COUNT(r.seq) AS recipients,
           SUM(r.${PENDING}) AS pending,
           MIN(CASE WHEN r.${PENDING} THEN r.next_attempt_at END) AS next_attempt_at
         FROM messages m JOIN recipients r ON r.message_id = m.id ${where}
         GROUP BY m.id ORDER BY m.id LIMIT ? OFFSET ?`,
    ).all(options.limit ?? -1, options.offset ?? 0) as (MessageRow & { recipients: number; pending: number; next_attempt_at: number | null })[];
    return rows.map((r) => ({ ...toMessage(r), recipients: r.recipients, pending: r.pending, nextAttemptAt: r.next_attempt_at }));
  }

  /**
   * Every message id with its size and hold, for recovery to compare with
   * the files; `inlineSize` is the length of the octets the index holds
   * (null: the message is a file).
   */
  allMessages(): (Pick<QueuedMessage, 'id' | 'size' | 'hold'> & { inlineSize: number | null })[] {
    return this.#stmt(`SELECT id, size, hold, length(octets) AS inlineSize FROM messages ORDER BY id`).all() as (Pick<QueuedMessage, 'id' | 'size' | 'hold'> & {
      inlineSize: number | null;
    })[];
  }

  /** The octets of a message kept in the index; undefined for a message that is a file (or gone). */
  octets(id: string): Buffer | undefined {
    return (this.#stmt(`SELECT octets FROM messages WHERE id = ?`).pluck().get(id) as Buffer | null | undefined) ?? undefined;
  }

  /** Keeps a message from being attempted until released. */
  hold(id: string, reason = 'held by administrator'): boolean {
    return this.#stmt(`UPDATE messages SET hold = ? WHERE id = ?`).run(reason, id).changes > 0;
  }

  release(id: string): boolean {
    return this.#stmt(`UPDATE messages SET hold = NULL WHERE id = ? AND hold IS NOT NULL`).run(id).changes > 0;
  }

  /**
   * Whether another connection (the `queue` command, another process)
   * committed since the last call. SQLite's data_version moves only for other
   * connections' commits, and reading it touches no table: cheap enough to
   * ask several times a second.
   */
  changedElsewhere(): boolean {
    const version = this.#stmt('PRAGMA data_version').pluck().get() as number;
    const changed = this.#dataVersion !== undefined && version !== this.#dataVersion;
    this.#dataVersion = version;
    return changed;
  }

  /** Makes the waiting recipients of one message (or of all, without an id) due now; returns how many. */
  retry(id?: string): number {
    const now = this.#now();
    const sql = `UPDATE recipients SET next_attempt_at = ?, updated_at = ? WHERE state IN ('queued', 'deferred')`;
    return id === undefined ? this.#stmt(sql).run(now, now).changes : this.#stmt(`${sql} AND message_id = ?`).run(now, now, id).changes;
  }

  depth(): QueueDepth {
    const row = this.#stmt(
      `SELECT (SELECT COUNT(*) FROM messages) AS messages,
                (SELECT COUNT(*) FROM recipients WHERE ${PENDING}) AS pending,
                (SELECT MIN(received_at) FROM messages) AS oldest`,
    ).get() as { messages: number; pending: number; oldest: number | null };
    return { messages: row.messages, pending: row.pending, oldestReceivedAt: row.oldest };
  }

  /** When the next recipient not held falls due (or a crashed attempt's lease runs out); null when none waits. */
  nextDueAt(): number | null {
    const row = this.#stmt(
      `SELECT MIN(r.next_attempt_at) AS due FROM recipients r JOIN messages m ON m.id = r.message_id WHERE r.${PENDING} AND m.hold IS NULL`,
    ).get() as { due: number | null };
    return row.due;
  }

  /** Whether any queued message carries a signature by this key (its record must stay published). */
  isSignedWith(domain: string, selector: string): boolean {
    return this.#stmt(`SELECT 1 FROM message_signatures WHERE domain = ? AND selector = ? LIMIT 1`).get(domain.toLowerCase(), selector) !== undefined;
  }

  /** For every key that signed a queued message, when the oldest such message came in (ms): the fleet's heartbeat carries it. */
  oldestBySigner(): { domain: string; selector: string; oldest: number }[] {
    return this.#stmt(
      `SELECT s.domain, s.selector, MIN(m.received_at) AS oldest FROM message_signatures s JOIN messages m ON m.id = s.message_id GROUP BY s.domain, s.selector`,
    ).all() as { domain: string; selector: string; oldest: number }[];
  }

  /** When the oldest queued message signed d=domain s=selector came in (ms), or null: a key is not revoked while such mail waits. */
  oldestSignedWith(domain: string, selector: string): number | null {
    const row = this.#stmt(
      `SELECT MIN(m.received_at) AS oldest FROM message_signatures s JOIN messages m ON m.id = s.message_id WHERE s.domain = ? AND s.selector = ?`,
    ).get(domain.toLowerCase(), selector) as { oldest: number | null };
    return row.oldest;
  }
}

function toMessage(row: MessageRow): QueuedMessage {
  return {
    id: row.id,
    receivedAt: row.received_at,
    sender: row.sender,
    size: row.size,
    client: row.client,
    ret: row.ret,
    envid: row.envid,
    hold: row.hold,
    senderDomains: row.sender_domains === null ? null : row.sender_domains.split(' ').filter(Boolean),
    storedIn: row.inline_size === null ? 'file' : 'index',
  };
}

function toRecipient(row: RecipientRow): QueuedRecipient {
  return {
    seq: row.seq,
    address: row.address,
    orcpt: row.orcpt,
    notify: row.notify === null ? null : row.notify.split(','),
    state: row.state,
    attempts: row.attempts,
    nextAttemptAt: row.next_attempt_at,
    lastReply: row.last_code === null ? null : { code: row.last_code, enhanced: row.last_enhanced ?? undefined, text: row.last_text ?? '' },
    delayWarnedAt: row.delay_warned_at,
    updatedAt: row.updated_at,
  };
}

/**
 * Where a message given in parts (up to accept.ts's INLINE_MAX_SIZE) is put
 * together for its INSERT, which copies it into the database: one Buffer
 * made for each message would be memory outside V8's heap that lives from
 * intake to delivery (the claim holds the parts), and such memory brings
 * V8's full collections nearer; at 100 KiB a message, a quarter of them came
 * from this copy.
 */
const GATHERED = Buffer.allocUnsafeSlow(128 * 1024);

/** The parts as one Buffer, valid until the next call. */
function oneBlob(octets: Buffer | readonly Buffer[]): Buffer {
  if (Buffer.isBuffer(octets)) return octets;
  const size = octets.reduce((sum, part) => sum + part.length, 0);
  if (size > GATHERED.length) return Buffer.concat(octets, size);
  let at = 0;
  for (const part of octets) at += part.copy(GATHERED, at);
  return GATHERED.subarray(0, at);
}

/** The claim of a message taken in the transaction that recorded it: what claimDue would have read back. */
function freshClaim(m: NewMessage, token: string, receivedAt: number, now: number, leaseUntil: number): Claim {
  const signatures = m.signatures
    .map((s) => ({ domain: s.domain.toLowerCase(), selector: s.selector }))
    .filter((s, i, all) => all.findIndex((o) => o.domain === s.domain && o.selector === s.selector) === i)
    .sort((a, b) => (a.domain === b.domain ? compare(a.selector, b.selector) : compare(a.domain, b.domain)));
  const message: QueuedMessage = {
    id: m.id,
    receivedAt,
    sender: m.sender,
    size: m.size,
    client: m.client,
    ret: m.ret ?? null,
    envid: m.envid ?? null,
    hold: null,
    senderDomains: m.senderDomains ? m.senderDomains.join(' ').split(' ').filter(Boolean) : null,
    storedIn: m.octets ? 'index' : 'file',
  };
  const recipients = m.recipients.map((r, seq): QueuedRecipient => ({
    seq,
    address: r.address,
    orcpt: r.orcpt ?? null,
    notify: r.notify?.join(',').split(',') ?? null,
    state: 'delivering',
    attempts: 0,
    nextAttemptAt: leaseUntil,
    lastReply: null,
    delayWarnedAt: null,
    updatedAt: now,
  }));
  return { token, message, recipients, leaseUntil, signingDomain: signatures[0]?.domain ?? null, signatures, octets: m.octets };
}

/** SQLite's default (BINARY) collation: by code unit for these ASCII names. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
