// The crash harness shared by test/queue/relay-crash.test.ts and
// bench/crash.ts: the relay runs as a child process in queue mode, a client
// floods it over SMTP, the child is killed with SIGKILL at random moments
// and started again on the same spool; at the end the sink is compared with
// the messages that got 250. Lost: acknowledged, never delivered.
// Duplicates: delivered more than once (SMTP allows those after a crash,
// RFC 5321 §6.1; losses never).
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import nodemailer from 'nodemailer';
import { SqliteKeyStore } from '../../src/keys/store.ts';
import { startSink, type Received } from '../helpers/relay-harness.ts';
import { tempDir } from '../helpers/tmp.ts';

const CHILD = fileURLToPath(new URL('./fixtures/relay-child.ts', import.meta.url));

export interface CrashResult {
  rounds: number;
  acknowledged: number;
  delivered: number;
  lost: string[];
  duplicates: number;
  /** Each duplicate: see DuplicateCopy. */
  duplicateCopies: DuplicateCopy[];
}

export interface DuplicateCopy {
  /**
   * How long before the kill nearest to it the first copy reached the sink,
   * in ms (negative: the sink read it just after the kill; the relay had
   * written it just before). A few ms: the crash fell between the upstream's
   * 250 and the relay's record of it (RFC 5321 §6.1).
   */
  leadMs: number;
  /** Both copies name the same queue id: one queued message sent twice, rather than a client's message queued twice. */
  sameQueueId: boolean;
}

export interface CrashOptions {
  rounds: number;
  /** Longest a round runs before the kill; each kill comes at random within it. */
  roundMs: number;
  /** Clients sending at once. */
  clients?: number;
  /** How long the last run may take to deliver everything. */
  settleMs?: number;
  random?: () => number;
  progress?: (line: string) => void;
}

/** Small deterministic PRNG, so a failing run can be repeated from its seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function startChild(configFile: string): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const guard = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`relay child not ready within 20 s: ${err}`));
    }, 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d;
      const m = /^ready (\d+)\n/.exec(out);
      if (m) {
        clearTimeout(guard);
        resolve({ child, port: Number(m[1]) });
      }
    });
    child.stderr!.on('data', (d: Buffer) => (err += d));
    child.on('exit', (code) => {
      clearTimeout(guard);
      reject(new Error(`relay child exited (${code}) before ready: ${err}`));
    });
  });
}

function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

const LATER = 'after the last kill';

/** Messages in the spool's index, read as the queue command reads it. */
function queuedCount(file: string): () => number {
  return () => {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      return db.prepare('SELECT COUNT(*) FROM messages').pluck().get() as number;
    } finally {
      db.close();
    }
  };
}

/** Polls `done` every 100 ms, at most `ms`; returns either way (the caller compares what arrived). */
async function until(done: () => boolean, ms: number): Promise<void> {
  for (const end = Date.now() + ms; !done() && Date.now() < end;) await new Promise((r) => setTimeout(r, 100));
}

const subjectOf = (r: Received) => /^Subject: (.*)$/m.exec(r.raw.toString('latin1'))?.[1] ?? '';
const nearest = (times: number[], t: number) => times.reduce((best, k) => (Math.abs(k - t) < Math.abs(best - t) ? k : best), Infinity);
const queueIdOf = (r: Received) => /\(dkim-relay\) with \S+ id (\S+)/.exec(r.raw.toString('latin1'))?.[1];

export async function runCrashRounds(options: CrashOptions): Promise<CrashResult> {
  const random = options.random ?? Math.random;
  const clients = options.clients ?? 4;
  const dir = tempDir('dkim-relay-crash-');
  const sink = await startSink();
  const keysDir = join(dir, 'keys');
  const store = SqliteKeyStore.open(keysDir);
  store.generate({ domain: 'example.com', algorithm: 'rsa', bits: 2048, activate: true });
  store.close();
  const configFile = join(dir, 'config.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      keys: { dir: keysDir },
      listen: { host: '127.0.0.1', port: 0, hostname: 'relay.test' },
      // A port of its own: the default 9125 may be taken by a relay already running on this host.
      metrics: { listen: '127.0.0.1:0' },
      delivery: { mode: 'queue', upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port, maxConnections: 2 } },
      queue: { dir: join(dir, 'spool'), retryAfter: '1s', maxRetryInterval: '2s' },
      log: { level: 'silent' },
    }),
  );

  const acknowledged = new Set<string>();
  let counter = 0;
  // When each message reached the sink (same order as sink.received), and when each kill came.
  const arrivedAt: number[] = [];
  const keep = sink.received.push.bind(sink.received);
  sink.received.push = (...items: Received[]) => {
    for (let i = 0; i < items.length; i++) arrivedAt.push(performance.now());
    return keep(...items);
  };
  const killedAt: number[] = [];
  try {
    for (let round = 1; round <= options.rounds; round++) {
      const { child, port } = await startChild(configFile);
      const transport = nodemailer.createTransport({
        host: '127.0.0.1',
        port,
        pool: true,
        maxConnections: clients,
        ignoreTLS: true,
        logger: false,
        connectionTimeout: 2000,
        socketTimeout: 5000,
      });
      let flooding = true;
      const flood = async () => {
        while (flooding) {
          const subject = `crash ${++counter}`;
          const raw = `From: a@example.com\r\nTo: b@example.net\r\nSubject: ${subject}\r\nMessage-ID: <c${counter}@example.com>\r\n\r\nround ${round}\r\n`;
          try {
            const info = await transport.sendMail({ envelope: { from: 'a@example.com', to: ['b@example.net'] }, raw });
            if (/^250 .*queued as/.test(info.response)) acknowledged.add(subject);
          } catch {
            if (child.exitCode !== null || child.signalCode !== null) return;
          }
        }
      };
      const senders = Array.from({ length: clients }, flood);
      await new Promise((r) => setTimeout(r, Math.floor(random() * options.roundMs) + 50));
      killedAt.push(performance.now());
      await kill(child);
      flooding = false;
      transport.close();
      await Promise.all(senders);
      options.progress?.(`round ${round}: ${acknowledged.size} acknowledged so far, ${sink.received.length} delivered`);
    }

    // A last start: recovery, then everything acknowledged must come out.
    const { child, port } = await startChild(configFile);
    try {
      const settleMs = options.settleMs ?? 60_000;
      const deliveredSubjects = () => new Set(sink.received.map(subjectOf));
      const queued = queuedCount(join(dir, 'spool', 'queue.db'));
      // Everything out and no row left to retry; then a later message delivered shows the relay has passed any attempt of the earlier ones.
      await until(() => [...acknowledged].every((s) => deliveredSubjects().has(s)) && queued() === 0, settleMs);
      const transport = nodemailer.createTransport({ host: '127.0.0.1', port, ignoreTLS: true, logger: false, connectionTimeout: 2000, socketTimeout: 5000 });
      await transport
        .sendMail({
          envelope: { from: 'a@example.com', to: ['b@example.net'] },
          raw: `From: a@example.com\r\nTo: b@example.net\r\nSubject: ${LATER}\r\n\r\nafter the last kill\r\n`,
        })
        .finally(() => transport.close());
      await until(() => deliveredSubjects().has(LATER) && queued() === 0, settleMs);
    } finally {
      await kill(child);
    }
    const counts = new Map<string, number>();
    const firstCopy = new Map<string, number>();
    const duplicateCopies: DuplicateCopy[] = [];
    sink.received.forEach((r, i) => {
      const subject = subjectOf(r);
      if (subject === LATER) return;
      counts.set(subject, (counts.get(subject) ?? 0) + 1);
      const first = firstCopy.get(subject);
      if (first === undefined) firstCopy.set(subject, i);
      else
        duplicateCopies.push({
          leadMs: nearest(killedAt, arrivedAt[first]!) - arrivedAt[first]!,
          sameQueueId: queueIdOf(r) === queueIdOf(sink.received[first]!),
        });
    });
    return {
      rounds: options.rounds,
      acknowledged: acknowledged.size,
      delivered: counts.size,
      lost: [...acknowledged].filter((s) => !counts.has(s)),
      duplicates: [...counts.values()].reduce((sum, n) => sum + n - 1, 0),
      duplicateCopies,
    };
  } finally {
    await sink.close();
  }
}
