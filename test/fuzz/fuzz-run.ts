// The fuzz run shared by the CI test and bench/fuzz.ts: a sink and the relay
// in-process, cases in batches with limited concurrency, and after each
// batch the invariants: the relay still answers a fresh session, the sink
// accounting holds, nothing was thrown or rejected unhandled; at the end, no
// socket or descriptor leaked and the heap did not keep growing.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { configSchema } from '../../src/config/schema.ts';
import { normalizeFileInThread } from '../../src/pipeline/normalize-thread.ts';
import { hashPassword } from '../../src/access/passwords.ts';
import { selfSignedCert, send, startSink, startTestRelay, tempDir, type Sink, type TestRelay } from '../helpers/relay-harness.ts';
import { INVARIANT, Ledger, type Failure, type Stats } from './ledger.ts';
import { caseSeed, Rng } from './prng.ts';
import { heapAfterGc, settledCensus, StallWatch, type FdCensus } from './resources.ts';
import { FUZZ_USER, probeSession, runCase } from './sessions.ts';

/**
 * The relay under test: small limits so the fuzzer reaches them. STARTTLS and one AUTH account, so
 * 127.0.0.3 (outside access.networks) may log in; failed logins are forgotten after 1 s so that
 * guessing sessions keep meeting both the delays and the 421 refusal without stalling the run.
 */
export function fuzzConfig(sinkPort: number, tls: { key: string; cert: string }, passwordHash: string): Record<string, unknown> {
  return {
    // No budget of failed logins for all addresses together: it would answer most of 127.0.0.3's logins 454.
    listen: {
      maxMessageSize: 256 * 1024,
      maxRecipients: 20,
      socketTimeoutSeconds: 5,
      maxClients: 100,
      tls,
      maxAuthFailures: 3,
      authPenaltySeconds: 1,
      maxAuthFailuresPerMinute: 1_000_000,
    },
    access: { networks: ['127.0.0.1/32', '127.0.0.2/32'], users: [{ name: FUZZ_USER.name, password: passwordHash }] }, // 127.0.0.3 must log in
    clients: [{ networks: ['127.0.0.1/32'], domains: ['example.com', 'example.org'] }], // 127.0.0.2 is unrestricted
    delivery: { upstream: { type: 'smtp', host: '127.0.0.1', port: sinkPort, maxConnections: 2, timeoutSeconds: 15 } },
  };
}

export interface Target {
  sink: Sink;
  relay: TestRelay;
  port: number;
  /** The pool size from the config, for the descriptor slack. */
  upstreamConnections: number;
  close(): Promise<void>;
}

export async function startTarget(): Promise<Target> {
  const sink = await startSink();
  const certDir = tempDir();
  const config = fuzzConfig(sink.port, selfSignedCert(certDir.path), await hashPassword(FUZZ_USER.password));
  const relay = await startTestRelay(config, (store) => {
    store.generate({ domain: 'example.com', algorithm: 'rsa', activate: true });
    store.generate({ domain: 'example.com', algorithm: 'ed25519', activate: true });
  });
  const parsed = configSchema.parse(config).delivery.upstream;
  return {
    sink,
    relay,
    port: relay.port,
    upstreamConnections: parsed.type === 'smtp' ? parsed.maxConnections : 0,
    async close() {
      await relay.close();
      await sink.close();
      certDir.remove();
    },
  };
}

/** Records uncaught exceptions, unhandled rejections and listener-leak warnings while installed. */
export function recordProcessEvents(): { events: string[]; uninstall(): void } {
  const events: string[] = [];
  const onException = (err: unknown) => events.push(`uncaughtException: ${(err as Error)?.stack ?? String(err)}`);
  const onRejection = (reason: unknown) => events.push(`unhandledRejection: ${(reason as Error)?.stack ?? String(reason)}`);
  const onWarning = (warning: Error) => {
    if (warning.name === 'MaxListenersExceededWarning') events.push(`warning: ${warning.name}: ${warning.message}`);
  };
  process.on('uncaughtException', onException);
  process.on('unhandledRejection', onRejection);
  process.on('warning', onWarning);
  return {
    events,
    uninstall() {
      process.off('uncaughtException', onException);
      process.off('unhandledRejection', onRejection);
      process.off('warning', onWarning);
    },
  };
}

export interface RunOptions {
  seed: number;
  cases: number;
  /** Only these case indexes (replay). */
  only?: number[];
  concurrency?: number;
  batchSize?: number;
  replyTimeoutMs?: number;
  /** Stop starting batches after this long (the run still checks everything it did). */
  timeBudgetMs?: number;
  /** Allowed heap growth (after GC) between the first batch and the end. */
  heapSlackBytes?: number;
  /** Runs of 16 batches or more: the most heap (after GC) may grow per 1000 cases over the second half. */
  heapTrendBytesPerThousandCases?: number;
  /** The longest the event loop may be blocked at once (one message's processing stalls every session). */
  maxLoopStallMs?: number;
  progress?: (p: Progress) => void;
}

export interface Progress {
  done: number;
  total: number;
  ms: number;
  failures: number;
  findings: number;
  heapMiB?: number;
}

export interface Summary {
  seed: number;
  casesRun: number;
  casesPlanned: number;
  ms: number;
  /** Failures kept in full (a few per invariant), and how many there were per invariant. */
  failures: Failure[];
  findings: Failure[];
  counts: Map<string, number>;
  stats: Stats;
  fdBefore: FdCensus;
  fdAfter: FdCensus;
  heapSamples: number[];
  processEvents: string[];
  /** Event-loop delay over the run (ms): a long stall means one message blocked every session. */
  loopDelay: { p99: number; max: number };
  replay: string;
}

/** Descriptors allowed beyond the exact accounting: see the check below. */
export const FD_SLACK = 3;

const PROBE_BASE = 900_000_000;

async function pool<T>(items: T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

/**
 * Least-squares slope of the second half of per-batch heap samples, in bytes per 1000 cases; null
 * for runs under 16 batches, where GC noise (±0.5 MiB a sample) would swamp a slope over 8 points.
 */
function heapTrendPerThousandCases(perBatch: number[], batchSize: number): number | null {
  if (perBatch.length < 16) return null;
  const ys = perBatch.slice(Math.floor(perBatch.length / 2));
  const n = ys.length;
  const meanX = (n - 1) / 2;
  const meanY = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  ys.forEach((y, x) => {
    num += (x - meanX) * (y - meanY);
    den += (x - meanX) ** 2;
  });
  return (num / den / batchSize) * 1000;
}

/** Waits until the sink count has not changed for `quietMs` (bounded by `maxMs`). */
async function sinkSettled(sink: Sink, quietMs: number, maxMs: number): Promise<void> {
  const deadline = Date.now() + maxMs;
  let last = sink.received.length;
  let since = Date.now();
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    if (sink.received.length !== last) {
      last = sink.received.length;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return;
  }
}

export async function runFuzz(target: Target, options: RunOptions): Promise<Summary> {
  const started = Date.now();
  const { seed } = options;
  const concurrency = options.concurrency ?? 16;
  const batchSize = options.batchSize ?? 250;
  const replyTimeoutMs = options.replyTimeoutMs ?? 10_000;
  const indexes = options.only ?? Array.from({ length: options.cases }, (_, i) => i);
  const ledger = new Ledger();
  const recorder = recordProcessEvents();
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const stalls = new StallWatch(500);
  const heapSamples: number[] = [];
  const replay = `FUZZ_SEED=${seed}`;
  let casesRun = 0;

  const probe = async (n: number) => {
    const record = await probeSession(target.port, PROBE_BASE + n, new Rng(caseSeed(seed, PROBE_BASE + n)));
    await sinkSettled(target.sink, 50, 2000);
    ledger.ingestSink(target.sink.received);
    ledger.addSession(record);
    ledger.account([record.index]);
    ledger.close([record.index]);
  };

  try {
    // Warm-up: the pool to the sink opens, keys are parsed, the normalization thread (its own event
    // loop's descriptors) is started; the descriptor baseline is taken after it.
    await pool([0, 1, 2, 3], 4, (n) => probe(n));
    await startNormalizationThread();
    const fdBefore = await settledCensus(target.port, target.sink.port, 3000);
    // The test harness keeps the relay's log lines for tests to wait on; the fuzzer reads none, and
    // keeping them would be the harness's heap growth, not the relay's.
    const heapNow = () => {
      target.relay.logs.length = 0;
      return heapAfterGc();
    };
    const heap0 = heapNow();
    if (heap0 !== null) heapSamples.push(heap0);

    let previous: number[] = [];
    for (let b = 0; b * batchSize < indexes.length; b++) {
      if (options.timeBudgetMs !== undefined && Date.now() - started > options.timeBudgetMs) break;
      const batch = indexes.slice(b * batchSize, (b + 1) * batchSize);
      await pool(batch, concurrency, async (index) => {
        const rng = new Rng(caseSeed(seed, index));
        try {
          const record = await runCase({ port: target.port, index, rng, replyTimeoutMs });
          ledger.addSession(record);
        } catch (err) {
          ledger.fail({ invariant: INVARIANT.fuzzer, index, detail: (err as Error).stack ?? String(err) });
        }
        casesRun++;
      });
      // Deliveries by sessions that left before their reply may still be on their way.
      await sinkSettled(target.sink, 150, 5000);
      ledger.ingestSink(target.sink.received);
      // This batch now, the one before once more (a late delivery of its may have come in meanwhile); then forget that one.
      ledger.account(batch);
      ledger.account(previous);
      ledger.close(previous);
      previous = batch;
      await probe(10 + b);
      for (const event of recorder.events.splice(0)) ledger.fail({ invariant: INVARIANT.noUncaught, detail: event });
      const heap = heapNow();
      if (heap !== null) heapSamples.push(heap);
      options.progress?.({
        done: casesRun,
        total: indexes.length,
        ms: Date.now() - started,
        failures: ledger.failureCount,
        findings: ledger.findingCount,
        heapMiB: heap === null ? undefined : Math.round((heap / 1048576) * 10) / 10,
      });
    }

    // The end: one more valid session, through an independent client (nodemailer).
    await probe(5);
    const last = await send({
      port: target.port,
      from: 'app@example.com',
      to: [`fz${PROBE_BASE - 1}t0q0@example.net`],
      raw: 'From: <app@example.com>\r\nSubject: last\r\n\r\nstill alive\r\n',
    });
    if (!last.ok) ledger.fail({ invariant: INVARIANT.alive, detail: `final nodemailer send: ${last.code} ${last.response}` });
    await sinkSettled(target.sink, 200, 5000);
    ledger.ingestSink(target.sink.received);
    ledger.account(); // everything again, now that no delivery can still be under way

    for (const event of recorder.events.splice(0)) ledger.fail({ invariant: INVARIANT.noUncaught, detail: event });

    // Descriptors: every relay session socket and every client socket is closed (exact, from /proc/net/tcp);
    // beyond those the total may differ from the warm-up baseline by the upstream pool (the relay's
    // pooled connections to the sink, 2 descriptors each as both ends live in this process, from 1 to
    // maxConnections of them) and by FD_SLACK: descriptors libuv and V8 open lazily (a timer fd, the
    // inotify/signal fds of a late watcher, a worker's pipe) that are process-wide, not per session.
    const fdAfter = await settledCensus(target.port, target.sink.port, 6000);
    if (fdAfter.relaySessions > 0) {
      ledger.fail({
        invariant: INVARIANT.descriptors,
        detail: `${fdAfter.relaySessions} relay session socket(s) still open after every client left: ${fdAfter.relaySessionStates.join(', ')}`,
      });
    }
    if (fdAfter.fuzzClients > 0)
      ledger.fail({ invariant: INVARIANT.descriptors, detail: `${fdAfter.fuzzClients} fuzz client socket(s) still open (a fuzzer bug)` });
    const poolGrowth = Math.max(0, fdAfter.upstreamPool - fdBefore.upstreamPool);
    if (fdAfter.upstreamPool > 2 * target.upstreamConnections) {
      ledger.fail({
        invariant: INVARIANT.descriptors,
        detail: `${fdAfter.upstreamPool} upstream pool socket ends open; the pool holds at most ${target.upstreamConnections} connections (${2 * target.upstreamConnections} ends)`,
      });
    }
    const growth = fdAfter.total - fdBefore.total - poolGrowth;
    if (growth > FD_SLACK) {
      ledger.fail({
        invariant: INVARIANT.descriptors,
        detail: `${growth} more descriptors than after warm-up (upstream pool growth ${poolGrowth} already allowed, slack ${FD_SLACK}): before ${JSON.stringify(fdBefore)}, after ${JSON.stringify(fdAfter)}`,
      });
    }

    // Heap: after GC, the end is compared with the first batch (the first batch warms caches and JIT).
    const heapEnd = heapNow();
    if (heapEnd !== null) heapSamples.push(heapEnd);
    // Long runs: the trend over the second half must be flat too (a slow leak hides in a fixed slack).
    const perThousand = heapTrendPerThousandCases(heapSamples.slice(1, -1), batchSize);
    const trendLimit = options.heapTrendBytesPerThousandCases ?? 256 * 1024;
    if (perThousand !== null && perThousand > trendLimit) {
      ledger.fail({
        invariant: INVARIANT.memory,
        detail: `heapUsed after GC keeps growing by ${(perThousand / 1048576).toFixed(2)} MiB per 1000 cases over the second half of the run (allowed ${(trendLimit / 1048576).toFixed(2)}); samples MiB: ${heapSamples.map((h) => (h / 1048576).toFixed(1)).join(' ')}`,
      });
    }
    const reference = heapSamples[1] ?? heapSamples[0];
    const slack = options.heapSlackBytes ?? 32 * 1048576;
    if (heapEnd !== null && reference !== undefined && heapEnd - reference > slack) {
      ledger.fail({
        invariant: INVARIANT.memory,
        detail: `heapUsed after GC grew ${((heapEnd - reference) / 1048576).toFixed(1)} MiB over the run (allowed ${(slack / 1048576).toFixed(0)} MiB); samples MiB: ${heapSamples.map((h) => (h / 1048576).toFixed(1)).join(' ')}`,
      });
    }

    // One message's processing must not freeze the daemon: every other session waits meanwhile.
    // The limit is generous (a full GC pause and a 2-core CI box stay far below it).
    const maxStall = options.maxLoopStallMs ?? 2000;
    stalls.stop();
    for (const stall of stalls.stalls.filter((st) => st.ms > maxStall)) {
      const suspects = ledger.suspectsOf(stall.start, stall.end);
      ledger.fail({
        invariant: INVARIANT.loopStall,
        detail: `the event loop was blocked for ${stall.ms} ms (allowed ${maxStall} ms); DATA transactions under way across it, largest first (the cause may also be a pipelined one the client could not time): ${suspects.length ? suspects.join(' | ') : 'none of ours (a probe or the run itself?)'}`,
      });
    }

    return {
      seed,
      casesRun,
      casesPlanned: indexes.length,
      ms: Date.now() - started,
      failures: ledger.failures,
      findings: ledger.findings,
      counts: ledger.counts,
      stats: ledger.stats,
      fdBefore,
      fdAfter,
      heapSamples,
      processEvents: recorder.events,
      loopDelay: { p99: Math.round(loop.percentile(99) / 1e6), max: Math.round(loop.max / 1e6) },
      replay,
    };
  } finally {
    stalls.stop();
    loop.disable();
    recorder.uninstall();
  }
}

/** A human-readable report of a run. */
export function formatSummary(summary: Summary, examplesPerInvariant = 3): string {
  const out: string[] = [];
  const s = summary.stats;
  out.push(
    `fuzz seed ${summary.seed}: ${summary.casesRun}/${summary.casesPlanned} cases in ${(summary.ms / 1000).toFixed(1)} s; ${s.sessions} sessions, ${s.replies} replies, ${s.accepted250} × 250 after DATA, ${s.sinkMessages} messages at the sink`,
  );
  out.push(
    `descriptors: ${summary.fdBefore.total} after warm-up, ${summary.fdAfter.total} at the end (upstream pool ends ${summary.fdBefore.upstreamPool} → ${summary.fdAfter.upstreamPool})`,
  );
  if (summary.heapSamples.length) out.push(`heap after GC (MiB): ${summary.heapSamples.map((h) => (h / 1048576).toFixed(1)).join(' ')}`);
  else out.push('heap check skipped: no gc() available');
  out.push(`event-loop delay: p99 ${summary.loopDelay.p99} ms, max ${summary.loopDelay.max} ms`);
  out.push('slowest replies to the end of DATA:');
  for (const [ms, what] of s.slowest) out.push(`  ${String(ms).padStart(6)} ms  ${what}`);
  out.push('replies to the end of DATA:');
  for (const [key, n] of [...s.finals].sort((a, b) => b[1] - a[1]).slice(0, 25)) out.push(`  ${String(n).padStart(6)}  ${key}`);
  const describe = (f: Failure, withLog: boolean) => {
    const lines = [`  - ${f.index !== undefined ? `case ${f.index} (replay: ${summary.replay} FUZZ_ONLY=${f.index}): ` : ''}${f.detail}`];
    if (withLog && f.log) lines.push(...f.log.slice(0, 60).map((l) => `        ${l}`));
    return lines.join('\n');
  };
  const grouped = (title: string, list: Failure[]) => {
    if (list.length === 0) return;
    out.push(`${[...new Set(list.map((f) => f.invariant))].reduce((n, inv) => n + (summary.counts.get(inv) ?? 0), 0)} ${title}:`);
    const groups = new Map<string, Failure[]>();
    for (const f of list) groups.set(f.invariant, [...(groups.get(f.invariant) ?? []), f]);
    for (const [invariant, fs] of groups) {
      const total = summary.counts.get(invariant) ?? fs.length;
      out.push(`[${invariant}] × ${total}`);
      out.push(...fs.slice(0, examplesPerInvariant).map((f, i) => describe(f, i === 0)));
      if (total > examplesPerInvariant) out.push(`  … and ${total - examplesPerInvariant} more`);
    }
  };
  grouped('finding(s) in the pipeline (internal errors, self-check failures)', summary.findings);
  grouped('invariant failure(s)', summary.failures);
  if (summary.failures.length === 0) out.push('all invariants held');
  return out.join('\n');
}

/** Runs one tiny job in the relay's normalization thread, which starts it (it starts with the first large message to re-encode). */
async function startNormalizationThread(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'dkim-relay-fuzz-warm-'));
  try {
    writeFileSync(join(dir, 'in.eml'), 'From: a@example.com\r\n\r\nhi\r\n');
    await normalizeFileInThread(join(dir, 'in.eml'), join(dir, 'out.eml'), {
      addDate: false,
      addMessageId: false,
      longLines: 'reencode',
      nul: 'reencode',
      refoldHeaders: true,
      mergeDuplicates: true,
      eightBitMime: true,
      messageIdDomain: 'example.com',
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
