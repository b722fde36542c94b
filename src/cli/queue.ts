// `queue …`: look at and steer the spool while the relay runs, as Postfix's
// mailq, postqueue -f and postsuper do. The CLI opens the same queue.db as
// the daemon (SQLite in WAL mode: it reads beside the daemon, and a change
// waits up to the busy timeout for the daemon's write to finish) and the
// same msg/ files (a small message is kept in queue.db itself). It never
// delivers: it changes rows, and the running relay, which watches queue.db
// for other writers, acts on them at once.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Argv } from 'yargs';
import { UserError } from '../common/errors.ts';
import { FINAL_STATES, QueueIndex, type MessageDetail, type QueueDepth, type QueuedRecipient } from '../queue/queue-index.ts';
import { replyLine } from '../smtp/reply.ts';
import { Spool } from '../queue/spool.ts';
import { SpoolUnavailableError } from '../common/spool-error.ts';
import { CheckFailed, configFrom, print, printJson, table, type GlobalArgs } from './context.ts';

type Args = GlobalArgs & { ids?: string[]; id?: string; all?: boolean; held?: boolean; yes?: boolean; message?: boolean };

interface OpenQueue {
  index: QueueIndex;
  spool: Spool;
}

/** Longest last reply shown by `queue list`; `queue show` prints it whole. */
const REPLY_WIDTH = 60;

export function queueCommand(yargs: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return yargs.command('queue', 'look at and steer the spool: list, show, retry, hold, release, delete, flush', (y) =>
    y
      .command<Args>(
        'list',
        'one line per queued message: age, size, sender, recipients and their states, next attempt, last reply',
        (c) => c.example('$0 queue list', 'as mailq'),
        (args) =>
          withQueue(args, (queue, dir) => {
            const now = Date.now();
            if (!queue)
              return args.json
                ? printJson({ messages: [], summary: summaryJson({ messages: 0, pending: 0, oldestReceivedAt: null }) })
                : print(`queue is empty (${join(dir, 'queue.db')} does not exist yet)`);
            // One read transaction: a consistent picture while the relay writes.
            const { messages, depth } = queue.index.db.transaction(() => ({
              messages: queue.index.list().map((m) => queue.index.show(m.id)!),
              depth: queue.index.depth(),
            }))();
            if (args.json) return printJson({ messages: messages.map((m) => messageJson(m, now)), summary: summaryJson(depth) });
            print(renderList(messages, depth, now));
          }),
      )
      .command<Args>(
        'show <id>',
        'everything about one message: envelope, DSN parameters, signatures, each recipient and its last reply',
        (c) =>
          c
            .positional('id', { type: 'string', describe: 'message id, as `queue list` shows it' })
            .option('message', { type: 'boolean', default: false, describe: 'print the message itself (the signed message as it will leave)' })
            .check((a) => (a.message && a.json ? '--message prints the message itself, not JSON: leave out one of them' : true)),
        (args) =>
          withQueue(args, async (queue) => {
            const message = find(queue, args.id!);
            // A small message is kept in queue.db itself, with its rows: it has no file.
            const file = message.storedIn === 'file' ? queue!.spool.path(message.id) : null;
            if (args.message && file === null) {
              process.stdout.write(queue!.index.octets(message.id) ?? Buffer.alloc(0));
              return;
            }
            if (args.message) {
              if ((await queue!.spool.size(message.id)) === undefined)
                throw new CheckFailed(
                  `${message.id}: its file ${file} is missing — restore it, or delete the message: dkim-relay queue delete ${message.id} --yes`,
                );
              return pipeline(queue!.spool.read(message.id), process.stdout, { end: false });
            }
            if (args.json) return printJson({ ...messageJson(message, Date.now()), file });
            print(renderShow(message, file ?? `none: kept in ${queue!.index.file}`, Date.now()));
          }),
      )
      .command<Args>(
        'retry [ids..]',
        'make the waiting recipients of these messages (or of all, --all) due now',
        (c) =>
          c
            .positional('ids', { type: 'string', array: true, describe: 'message ids' })
            .option('all', { type: 'boolean', default: false, describe: 'every message (as flush)' })
            .check((a) => oneSelection(a, '--all')),
        (args) => (args.all ? flush(args) : changeEach(args, 'retry')),
      )
      .command<Args>(
        'hold [ids..]',
        'keep messages from delivery until released (an attempt already under way finishes)',
        (c) =>
          c
            .positional('ids', { type: 'string', array: true, describe: 'message ids' })
            .option('all', { type: 'boolean', default: false, describe: 'every message in the queue' })
            .check((a) => oneSelection(a, '--all')),
        (args) => changeEach(args, 'hold'),
      )
      .command<Args>(
        'release [ids..]',
        'let held messages be delivered again, at their next attempt as scheduled',
        (c) =>
          c
            .positional('ids', { type: 'string', array: true, describe: 'message ids' })
            .option('all', { type: 'boolean', default: false, describe: 'every held message' })
            .check((a) => oneSelection(a, '--all')),
        (args) => changeEach(args, 'release'),
      )
      .command<Args>(
        'delete [ids..]',
        'remove messages from the queue for good, undelivered and without a bounce; needs --yes',
        (c) =>
          c
            .positional('ids', { type: 'string', array: true, describe: 'message ids' })
            .option('held', { type: 'boolean', default: false, describe: 'every held message (hold what you mean to delete first)' })
            .option('yes', { type: 'boolean', default: false, describe: 'really delete' })
            .check((a) => oneSelection(a, '--held'))
            .example('$0 queue delete 20261122T101530123-0000-k3j9x2m4q8ab --yes', 'as postsuper -d')
            .example('$0 queue hold --all && $0 queue release ID && $0 queue delete --held --yes', 'drop a flood, keeping what is wanted'),
        (args) => remove(args),
      )
      .command<Args>(
        'flush',
        'make every waiting recipient due now (as postqueue -f)',
        (c) => c,
        (args) => flush(args),
      )
      .demandCommand(1, 'name a queue command: list, show, retry, hold, release, delete or flush'),
  );
}

/** Ids, or the flag that stands for many, not both and not neither. */
function oneSelection(args: { ids?: string[]; all?: boolean; held?: boolean }, flag: '--all' | '--held'): true | string {
  const many = flag === '--all' ? args.all : args.held;
  const ids = args.ids ?? [];
  if (many && ids.length > 0) return `give message ids or ${flag}, not both`;
  if (!many && ids.length === 0) return `name a message id (see dkim-relay queue list), or ${flag}`;
  return true;
}

/**
 * Opens the index and spool of queue.dir, runs `use`, closes them. No
 * queue.db yet means an empty queue: nothing is created (a CLI run from
 * the wrong directory must not start a spool of its own).
 */
async function withQueue<T>(args: GlobalArgs, use: (queue: OpenQueue | undefined, dir: string) => T | Promise<T>): Promise<T> {
  const dir = configFrom(args).config.queue.dir;
  const file = join(dir, 'queue.db');
  if (!queueExists(dir, file)) return use(undefined, dir);
  refuseOtherOwner(dir);
  let index: QueueIndex | undefined;
  try {
    index = QueueIndex.open(file);
    return await use({ index, spool: new Spool(dir) }, dir);
  } catch (err) {
    throw explainQueueError(err, file);
  } finally {
    index?.close();
  }
}

/**
 * Whether queue.db is there. A spool this user may not look into is not an
 * empty queue: existsSync() would say "no" to both.
 */
function queueExists(dir: string, file: string): boolean {
  try {
    return statSync(file, { throwIfNoEntry: false }) !== undefined;
  } catch (err) {
    refuseOtherOwner(dir);
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new UserError(`cannot look into ${dir} (${code})`, 'run dkim-relay queue as the user the relay runs as (see docs/install-and-systemd.md)');
  }
}

/**
 * root running the CLI while the relay is stopped would leave queue.db-wal
 * and -shm owned by root, which the relay's own user then cannot open.
 */
function refuseOtherOwner(dir: string): void {
  const uid = process.getuid?.();
  const owner = statSync(dir).uid;
  if (uid !== undefined && uid !== owner) {
    throw new UserError(
      `${dir} belongs to uid ${owner}, and this is uid ${uid}`,
      'run dkim-relay queue as the user the relay runs as (see docs/install-and-systemd.md)',
    );
  }
}

/** SQLite's and the spool's errors as one line saying what to do. */
function explainQueueError(err: unknown, file: string): unknown {
  const code = String((err as { code?: unknown } | null)?.code ?? '');
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return new UserError(
      `queue database ${file} is locked by another process`,
      'wait a moment and retry; if it stays locked, look for a stuck dkim-relay process',
    );
  }
  if (err instanceof SpoolUnavailableError && err.reason === 'full') return new UserError(err.message, 'free space on the spool disk');
  if (err instanceof SpoolUnavailableError || code.startsWith('SQLITE_PERM')) {
    return new UserError(`cannot open queue database ${file} for writing (${code})`, 'run the command as the user the relay runs as');
  }
  if (code.startsWith('SQLITE_CORRUPT') || code.startsWith('SQLITE_NOTADB')) {
    return new UserError(`queue database ${file} is damaged`, 'stop the relay and restore the spool from backup');
  }
  return err;
}

function unknownId(id: string): CheckFailed {
  return new CheckFailed(`no message ${id} in the queue — see dkim-relay queue list`);
}

function find(queue: OpenQueue | undefined, id: string): MessageDetail {
  const message = queue?.index.show(id);
  if (!message) throw unknownId(id);
  return message;
}

interface Change {
  id: string;
  /** retry: recipients made due; hold and release: whether the message changed. */
  changed: number | boolean;
  held: boolean;
  /** Recipients an attempt under way holds; hold and delete do not stop it. */
  delivering: number;
  /** When the message is next attempted, as `queue list` shows it. */
  next: string;
}

/** retry, hold or release of named messages (in one transaction, all or none), or of all with --all. */
function changeEach(args: Args, action: 'retry' | 'hold' | 'release'): Promise<void> {
  return withQueue(args, async (queue) => {
    if (!queue) {
      if (args.all) return report(action, [], [], args);
      throw unknownId(args.ids![0]!);
    }
    const { index } = queue;
    const select = () =>
      args.all ? index.list(action === 'release' ? { held: true } : {}).map((m) => index.show(m.id)!) : args.ids!.map((id) => find(queue, id));
    // A message recovery held because its file is gone or cut must not go back to delivery.
    const broken = action === 'release' ? await brokenFiles(queue, select()) : [];
    if (broken.length > 0 && !args.all) throw new CheckFailed(`${broken[0]!.id} not released: ${broken[0]!.why}`);
    const changes = index.db
      .transaction(() =>
        select()
          .filter((m) => !broken.some((b) => b.id === m.id))
          .map((m): Change => {
            const changed = action === 'retry' ? index.retry(m.id) : action === 'hold' ? m.hold === null && index.hold(m.id) : index.release(m.id);
            const after = index.show(m.id)!;
            return {
              id: m.id,
              changed,
              held: after.hold !== null,
              delivering: m.recipients.filter((r) => r.state === 'delivering').length,
              next: next(after.recipients, Date.now()),
            };
          }),
      )
      .immediate();
    report(action, changes, broken, args);
  });
}

interface Broken {
  id: string;
  why: string;
}

/** Messages whose file is missing or not the size accepted (start-up recovery holds those). */
async function brokenFiles(queue: OpenQueue, messages: MessageDetail[]): Promise<Broken[]> {
  const broken: Broken[] = [];
  for (const m of messages) {
    if (m.storedIn === 'index') continue; // committed with its rows: nothing to lose apart from them
    const size = await queue.spool.size(m.id);
    if (size === m.size) continue;
    const what = size === undefined ? 'is missing' : `has ${size} octets, not the ${m.size} accepted`;
    broken.push({
      id: m.id,
      why: `its file ${queue.spool.path(m.id)} ${what} — restore the file, or delete the message: dkim-relay queue delete ${m.id} --yes`,
    });
  }
  return broken;
}

function report(action: 'retry' | 'hold' | 'release', changes: Change[], broken: Broken[], args: Args): void {
  if (args.json) return printJson({ action, messages: changes, ...(action === 'release' ? { notReleased: broken } : {}) });
  if (changes.length === 0 && broken.length === 0) print(action === 'release' ? 'no held messages' : 'queue is empty');
  for (const c of changes) {
    if (action === 'retry') {
      print(
        c.held
          ? `${c.id}: ${c.changed} recipient(s) due now, but the message is held — release it to deliver: dkim-relay queue release ${c.id}`
          : `${c.id}: will be tried now (${c.changed} recipient(s))`,
      );
    } else if (action === 'hold') {
      print(`${c.id}: ${c.changed ? 'held' : 'was already held'}; nothing more is attempted until dkim-relay queue release ${c.id}`);
      if (c.delivering > 0) print(`${c.id}: the attempt under way for ${c.delivering} recipient(s) still finishes`);
    } else {
      const when = c.next === 'now' ? 'will be tried now' : `next attempt ${c.next} (dkim-relay queue retry ${c.id} makes it due now)`;
      print(c.changed ? `${c.id}: released; ${when}` : `${c.id}: was not held; nothing to do`);
    }
  }
  for (const b of broken) print(`${b.id}: not released: ${b.why}`);
}

/** Every waiting recipient due now: `flush` and `retry --all`. */
function flush(args: GlobalArgs): Promise<void> {
  return withQueue(args, (queue) => {
    const result = queue
      ? queue.index.db
          .transaction(() => {
            const due = queue.index.retry();
            const waiting = queue.index
              .list()
              .map((m) => queue.index.show(m.id)!)
              .filter((m) => waitingOf(m) > 0);
            const free = waiting.filter((m) => m.hold === null);
            return { due, messages: free.length, recipients: free.reduce((n, m) => n + waitingOf(m), 0), held: waiting.length - free.length };
          })
          .immediate()
      : { due: 0, messages: 0, recipients: 0, held: 0 };
    if (args.json) return printJson({ action: 'flush', ...result });
    const held = result.held > 0 ? `; ${result.held} held message(s) stay held (dkim-relay queue release --all)` : '';
    const tried = result.messages === 0 ? 'nothing is waiting' : `${result.messages} message(s) will be tried now (${result.recipients} recipient(s))`;
    print(`${tried}${held}`);
  });
}

/**
 * `delete`: rows first, then files (a file left by a crash between the two
 * is moved aside by start-up recovery; rows without a file could never be
 * sent). Without --yes it says what it would delete and exits 2.
 */
function remove(args: Args): Promise<void> {
  return withQueue(args, async (queue) => {
    if (!queue && !args.held) throw unknownId(args.ids![0]!);
    const select = () =>
      !queue ? [] : args.held ? queue.index.list({ held: true }).map((m) => queue.index.show(m.id)!) : args.ids!.map((id) => find(queue, id));
    const targets = select();
    if (targets.length === 0) return args.json ? printJson({ action: 'delete', deleted: [] }) : print('no held messages: nothing to delete');
    if (!args.yes) {
      const what =
        targets.length === 1
          ? describeBriefly(targets[0]!)
          : `${targets.length} ${args.held ? 'held ' : ''}messages (${pendingOf(targets)} recipient(s) undelivered)`;
      throw new UserError(
        `would delete ${what}, without delivery or bounce`,
        `add --yes to delete: dkim-relay queue delete ${args.held ? '--held' : targets.map((t) => t.id).join(' ')} --yes`,
      );
    }
    const { index, spool } = queue!;
    // Selected again inside the transaction: what is held now, not a moment ago.
    const deleted = index.db.transaction(() => select().filter((m) => index.remove(m.id))).immediate();
    for (const m of deleted) await spool.delete(m.id);
    const rows = deleted.map((m) => ({ id: m.id, undelivered: pendingOf([m]), delivering: m.recipients.filter((r) => r.state === 'delivering').length }));
    if (args.json) return printJson({ action: 'delete', deleted: rows });
    for (const r of rows) {
      print(`${r.id}: deleted (${r.undelivered} recipient(s) undelivered, no bounce sent)`);
      if (r.delivering > 0) print(`${r.id}: the attempt under way for ${r.delivering} recipient(s) may still reach the upstream`);
    }
  });
}

/** Recipients still to be delivered at a next attempt (not under way, not finished). */
function waitingOf(m: MessageDetail): number {
  return m.recipients.filter((r) => r.state === 'queued' || r.state === 'deferred').length;
}

function describeBriefly(m: MessageDetail): string {
  return `message ${m.id} from ${m.sender ? `<${m.sender}>` : '<>'} to ${m.recipients.length} recipient(s), ${pendingOf([m])} undelivered`;
}

function pendingOf(messages: MessageDetail[]): number {
  return messages.reduce((n, m) => n + m.recipients.filter((r) => !FINAL_STATES.includes(r.state)).length, 0);
}

// ---- rendering (pure: `now` is given) ----

function messageJson(m: MessageDetail, now: number) {
  return {
    id: m.id,
    receivedAt: iso(m.receivedAt),
    ageSeconds: Math.max(0, Math.floor((now - m.receivedAt) / 1000)),
    size: m.size,
    sender: m.sender,
    client: m.client,
    hold: m.hold,
    ret: m.ret,
    envid: m.envid,
    signatures: m.signatures,
    nextAttemptAt: nextAttempt(m.recipients) === null ? null : iso(nextAttempt(m.recipients)!),
    recipients: m.recipients.map((r) => ({
      address: r.address,
      state: r.state,
      attempts: r.attempts,
      nextAttemptAt: FINAL_STATES.includes(r.state) ? null : iso(r.nextAttemptAt),
      lastReply: r.lastReply,
      orcpt: r.orcpt,
      notify: r.notify,
      delayWarnedAt: r.delayWarnedAt === null ? null : iso(r.delayWarnedAt),
    })),
  };
}

function summaryJson(d: QueueDepth) {
  return { messages: d.messages, pending: d.pending, oldestReceivedAt: d.oldestReceivedAt === null ? null : iso(d.oldestReceivedAt) };
}

export function renderList(messages: MessageDetail[], depth: QueueDepth, now: number): string {
  if (messages.length === 0) return 'queue is empty';
  const rows = messages.map((m) => [
    m.id,
    ageOfMs(now - m.receivedAt),
    String(m.size),
    m.sender ? m.sender : '<>',
    m.recipients.map((r) => `${r.address} ${r.state}`).join(', '),
    String(Math.max(...m.recipients.map((r) => r.attempts))),
    m.hold !== null ? 'held' : next(m.recipients, now),
    shorten(lastReplyOf(m.recipients), REPLY_WIDTH),
  ]);
  const oldest = depth.oldestReceivedAt === null ? '' : `, oldest ${ageOfMs(now - depth.oldestReceivedAt)}`;
  const summary = `${depth.messages} message(s), ${depth.pending} recipient(s) pending${oldest}`;
  return `${table(['ID', 'AGE', 'SIZE', 'SENDER', 'RECIPIENTS', 'ATTEMPTS', 'NEXT', 'LAST REPLY'], rows)}\n${summary}`;
}

export function renderShow(m: MessageDetail, file: string, now: number): string {
  const dsn = [m.ret ? `RET=${m.ret}` : '', m.envid ? `ENVID=${m.envid}` : ''].filter(Boolean).join(' ');
  const lines = [
    `id:          ${m.id}`,
    `received:    ${iso(m.receivedAt)} (${ageOfMs(now - m.receivedAt)} ago)`,
    `size:        ${m.size} octets`,
    `sender:      <${m.sender}>`,
    `client:      ${m.client}`,
    `held:        ${m.hold === null ? 'no' : `yes: ${m.hold}`}`,
    `DSN:         ${dsn || 'none given'}`,
    `signatures:  ${m.signatures.length === 0 ? 'none' : m.signatures.map((s) => `d=${s.domain} s=${s.selector}`).join(', ')}`,
    `file:        ${file}`,
    'recipients:',
  ];
  for (const r of m.recipients) {
    const when = FINAL_STATES.includes(r.state) ? '' : m.hold !== null ? ', held' : `, next ${next([r], now)}`;
    lines.push(`  <${r.address}>  ${r.state}, ${r.attempts} attempt(s)${when}`);
    const params = [r.notify ? `NOTIFY=${r.notify.join(',')}` : '', r.orcpt ? `ORCPT=${r.orcpt}` : ''].filter(Boolean).join(' ');
    if (params) lines.push(`    ${params}`);
    if (r.lastReply) lines.push(`    last reply: ${replyLine(r.lastReply)}`);
    if (r.delayWarnedAt !== null) lines.push(`    delay warning sent ${iso(r.delayWarnedAt)}`);
  }
  return lines.join('\n');
}

/** Earliest next attempt among the recipients still waiting. */
function nextAttempt(recipients: QueuedRecipient[]): number | null {
  const times = recipients.filter((r) => !FINAL_STATES.includes(r.state)).map((r) => r.nextAttemptAt);
  return times.length === 0 ? null : Math.min(...times);
}

function next(recipients: QueuedRecipient[], now: number): string {
  if (recipients.some((r) => r.state === 'delivering')) return 'delivering';
  const at = nextAttempt(recipients);
  if (at === null) return '-';
  return at <= now ? 'now' : `in ${ageOfMs(at - now)}`;
}

/** The latest reply of a recipient not yet delivered, else the latest of all. */
function lastReplyOf(recipients: QueuedRecipient[]): string {
  const replied = recipients.filter((r) => r.lastReply !== null).sort((a, b) => b.updatedAt - a.updatedAt);
  const pick = replied.find((r) => r.state !== 'delivered') ?? replied[0];
  return pick ? replyLine(pick.lastReply!) : '-';
}

function shorten(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, width - 1)}…`;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** Milliseconds as "45s", "12m", "3h 5m", "2d 4h". */
export function ageOfMs(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return h > 0 ? `${d}d ${h}h` : `${d}d`;
  if (h > 0) return m > 0 ? `${h}h ${m}m` : `${h}h`;
  return m > 0 ? `${m}m` : `${s}s`;
}
