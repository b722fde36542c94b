// npm run bench: dkim-relay end to end against real peers, and the signer
// alone, each beside the limits measured on the same machine in the same run.
//
// The real daemon (src/cli/main.ts serve) runs as a child process in each
// delivery mode and with each algorithm; Postfix + OpenDKIM run privately on
// loopback as the peer; Postfix's smtp-source (or bench/load-node.ts) sends the
// load; one counting sink receives everything and python3-dkim checks a
// sample. Everything talks to 127.0.0.1 only, every load is bounded in count
// and time, and every process started is stopped by its PID. The results go
// to stdout and into BENCHMARKS.md (BENCH_WRITE=0: stdout only).
//
// Settings (environment): BENCH_ROUNDS (3), BENCH_SESSIONS (20),
// BENCH_SMALL_MESSAGES (1200), BENCH_LARGE_MESSAGES (300), BENCH_LOAD_SECONDS
// (40, the most one load may run), BENCH_LATENCY_SECONDS (15: 300 probes, so the p99 is not one slow message), BENCH_LOAD
// (smtp-source or node), BENCH_SIGNER_ROUNDS (5), BENCH_SECONDS (0.5) and BENCH_SIGNER_WARMUP (6 s) for
// the in-process signer, BENCH_PEERS=0 to leave the peers out, BENCH_BIG=0 to
// leave the 25 MB messages out, BENCH_GROWTH=0 to leave out how CPU time grows
// with hostile input (bench/growth.ts, also `npm run bench:growth` alone),
// BENCH_PIPELINED=0 to leave out the 4 KiB rows with a pipelining load, BENCH_WARMUP=0 to leave out the unmeasured round each system gets first.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EndToEnd, type SystemUnderTest } from './e2e.ts';
import { formatRow, growthRows, LINEAR_AT_8X, type GrowthRow } from './growth.ts';
import { defaultTool, type LoadTool } from './load.ts';
import { load1, machine } from './machine.ts';
import { family } from './memory.ts';
import { ensurePackages } from './peers/install.ts';
import { startPostfixOpenDkim, type RunningPeer } from './peers/postfix-opendkim.ts';
import { modeSupported, startRelayProcess, warmCompileCache, type Algorithm, type DeliveryMode, type RunningRelayProcess } from './relay.ts';
import { ratioToPeer, render, writeSection, type Results } from './report.ts';
import { signCheckRows } from './sign-check.ts';
import { signerRows } from './signer.ts';
import { CountingSink } from './sink.ts';
import { median, now } from './stats.ts';
import { LARGE, SMALL, verdicts } from './targets.ts';

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const ROUNDS = env('BENCH_ROUNDS', 3);
const SESSIONS = env('BENCH_SESSIONS', 20);
const COUNT = new Map([
  [SMALL, env('BENCH_SMALL_MESSAGES', 1200)],
  [LARGE, env('BENCH_LARGE_MESSAGES', 300)],
]);
const LOAD_SECONDS = env('BENCH_LOAD_SECONDS', 40);
const LATENCY_SECONDS = env('BENCH_LATENCY_SECONDS', 15);
const PROBE_RATE = 20;
const BIG = 25 * 1000 * 1000;
const say = (line: string) => console.log(line);

const startedAt = new Date();
const t0 = now();
const loads = [load1()];
const host = machine();
const tool: LoadTool = process.env.BENCH_LOAD === 'node' ? 'node' : defaultTool();
say(
  `dkim-relay benchmark, ${startedAt.toISOString()}: ${host.cores} × ${host.cpu}, ${host.memoryGiB.toFixed(1)} GiB, Node ${host.node}; load average ${loads[0]!.toFixed(2)}`,
);

// Everything started is stopped on the way out, by PID, whatever happens meanwhile.
const stops: (() => Promise<void>)[] = [];
const scratch = mkdtempSync(join(tmpdir(), 'dkim-relay-bench-relays-'));
async function cleanUp(): Promise<void> {
  for (const stop of stops.splice(0).reverse()) await stop().catch((err: Error) => say(`  stopping: ${err.message}`));
  rmSync(scratch, { recursive: true, force: true });
}
process.once('SIGINT', () => void cleanUp().then(() => process.exit(130)));
process.once('SIGTERM', () => void cleanUp().then(() => process.exit(143)));

const skipped: string[] = [];
try {
  say(`\nThe signer alone, in-process (${env('BENCH_SIGNER_ROUNDS', 5)} alternating rounds of ${env('BENCH_SECONDS', 0.5)} s, medians):`);
  const signer = signerRows(env('BENCH_SIGNER_ROUNDS', 5), env('BENCH_SECONDS', 0.5), (row) =>
    say(`  ${row.what.padEnd(44)} ${row.result.padStart(12)}   ${row.limit.padEnd(34)} ${(row.ratio * 100).toFixed(0).padStart(4)} %`),
  );
  say(
    `\nSigning + self-check as the relay does them, through the crypto pool (${env('BENCH_SIGNER_ROUNDS', 5)} alternating rounds of ${env('BENCH_SECONDS', 0.5)} s, medians):`,
  );
  const signCheck = await signCheckRows(env('BENCH_SIGNER_ROUNDS', 5), env('BENCH_SECONDS', 0.5), (row) =>
    say(`  ${row.what.padEnd(52)} ${row.result.padStart(12)}   ${row.limit.padEnd(34)} ${(row.ratio * 100).toFixed(0).padStart(4)} %`),
  );
  signer.push(...signCheck);
  loads.push(load1());
  let growth: GrowthRow[] | undefined;
  if (process.env.BENCH_GROWTH === '0') {
    skipped.push('how CPU time grows with hostile input: left out (BENCH_GROWTH=0)');
  } else {
    say(`\nWork at 8× the input, CPU time of this process (linear: under ${LINEAR_AT_8X}×; quadratic: 64×):`);
    growth = await growthRows((row) => say(formatRow(row)));
    loads.push(load1());
  }

  const sink = await CountingSink.start();
  stops.push(() => sink.close());

  await warmCompileCache({ mode: 'sync', algorithm: 'rsa', sinkPort: sink.port }, scratch);
  say('\nStarting the systems under test:');
  const systems: SystemUnderTest[] = [];
  const name = (mode: DeliveryMode, algorithm: Algorithm) => `dkim-relay ${mode} ${algorithm === 'rsa' ? 'RSA-2048' : 'Ed25519'}`;
  let queueMissing = '';
  for (const mode of ['sync', 'queue'] as const) {
    if (mode === 'queue') {
      const supported = modeSupported({ dir: scratch, mode, algorithm: 'rsa', sinkPort: sink.port });
      if (!supported.ok) {
        // The relay's line reads "dkim-relay: FILE: PROBLEM — HINT": the problem is what matters here.
        const problem = supported.reason.replace(/^dkim-relay: [^:]*: /, '').replace(/ — .*$/, '');
        queueMissing = 'queue mode is not in this build yet';
        skipped.push(`dkim-relay in queue mode: \`config check\` refuses \`delivery.mode: queue\` (${problem})`);
        say(`  dkim-relay queue: skipped, config check refuses delivery.mode: queue (${problem})`);
        continue;
      }
    }
    for (const algorithm of ['rsa', 'ed25519'] as const) {
      const dir = mkdtempSync(join(scratch, `${mode}-${algorithm}-`));
      const relay: RunningRelayProcess = await startRelayProcess({ dir, mode, algorithm, sinkPort: sink.port });
      stops.push(() => relay.stop());
      systems.push({ name: name(mode, algorithm), port: relay.port, pids: () => [relay.pid], records: relay.records });
      say(`  ${name(mode, algorithm)}: PID ${relay.pid}, port ${relay.port}`);
    }
  }
  let peer: RunningPeer | undefined;
  if (process.env.BENCH_PEERS === '0') {
    skipped.push('Postfix + OpenDKIM: left out (BENCH_PEERS=0)');
  } else {
    const problem = ensurePackages(say);
    if (problem) {
      skipped.push(`Postfix + OpenDKIM: ${problem}`);
      say(`  Postfix + OpenDKIM: not measured, ${problem}`);
    } else {
      try {
        peer = await startPostfixOpenDkim(sink.port);
        const running = peer;
        stops.push(() => running.stop());
        systems.push({ name: 'Postfix + OpenDKIM RSA-2048', port: peer.port, pids: peer.pids, records: peer.records, peer: true });
        say(`  Postfix + OpenDKIM: port ${peer.port}, ${family(peer.pids()).length} processes`);
      } catch (err) {
        const reason = `could not start: ${(err as Error).message.split('\n')[0]}`;
        skipped.push(`Postfix + OpenDKIM: ${reason}`);
        say(`  Postfix + OpenDKIM: not measured, ${reason}`);
      }
    }
  }

  const e2e = new EndToEnd(
    sink,
    {
      sessions: SESSIONS,
      rounds: ROUNDS,
      count: COUNT,
      seconds: LOAD_SECONDS,
      latencySeconds: LATENCY_SECONDS,
      probeRate: PROBE_RATE,
      tool,
      warmup: process.env.BENCH_WARMUP !== '0',
    },
    say,
  );
  stops.push(async () => e2e.close());
  for (const size of [SMALL, LARGE]) {
    say(`\nThroughput, ${size / 1024} KiB messages, ${SESSIONS} sessions (${tool}), ${COUNT.get(size)} messages a run, ${ROUNDS} rounds in alternation:`);
    await e2e.throughput(systems, size);
    loads.push(load1());
  }
  // The clients the relay serves (Exchange, Postfix, nodemailer) pipeline MAIL, RCPT and DATA (RFC 2920);
  // smtp-source does not. The same 4 KiB load from the pipelining generator, relay in queue mode beside the peer.
  const pipelined = new EndToEnd(
    sink,
    { sessions: SESSIONS, rounds: ROUNDS, count: COUNT, seconds: LOAD_SECONDS, latencySeconds: 0, probeRate: 0, tool: 'node', warmup: false },
    say,
  );
  stops.push(async () => pipelined.close());
  const pipelinedSystems = systems.filter((s) => s.peer || s.name === name('queue', 'rsa'));
  if (tool !== 'node' && process.env.BENCH_PIPELINED !== '0' && pipelinedSystems.length > 0) {
    say(
      `\nThroughput, ${SMALL / 1024} KiB messages, ${SESSIONS} pipelining sessions (bench/load-node.ts), ${COUNT.get(SMALL)} messages a run, ${ROUNDS} rounds:`,
    );
    await pipelined.throughput(pipelinedSystems, SMALL);
    loads.push(load1());
  }
  say(`\nAdded latency at half the maximum rate (probe: ${PROBE_RATE} messages/s on its own connection, ${LATENCY_SECONDS} s):`);
  for (const size of [SMALL, LARGE]) for (const system of systems) await e2e.latency(system, size);
  loads.push(load1());
  const big: Results['big'] = [];
  if (process.env.BENCH_BIG !== '0') {
    say('\nFour concurrent 25 MB messages:');
    for (const system of systems.filter((s) => s.name.includes('RSA'))) big.push({ system: system.name, ...(await e2e.concurrentBig(system, BIG)) });
  }
  const stalls: Results['stalls'] = [];
  if (process.env.BENCH_BIG !== '0') {
    say('\nSmall messages during six concurrent 30 MB ones:');
    for (const system of systems.filter((s) => s.name.includes('RSA') && !s.peer)) stalls.push({ system: system.name, ...(await e2e.stall(system)) });
  }
  loads.push(load1());

  const peerName = systems.find((s) => s.peer)?.name;
  const vsPeer = (system: string, size: number): number | undefined => ratioToPeer(e2e.runs, system, peerName, size);
  const queueRsa = systems.find((s) => s.name === name('queue', 'rsa'))?.name;
  const syncRsa = name('sync', 'rsa');
  const peakPss = (system: string, size: number) => {
    const runs = e2e.runs.filter((r) => r.system === system && r.size === size);
    return runs.length > 0 ? Math.max(...runs.map((r) => r.peakPss)) : undefined;
  };
  const relayForTargets = queueRsa ?? syncRsa;
  const results = {
    date: startedAt,
    command: 'npm run bench',
    minutes: (now() - t0) / 60000,
    machine: host,
    loads,
    loadTool:
      tool === 'smtp-source'
        ? 'Postfix smtp-source (no command pipelining, as its manual says), `-s 20 -d`; the half-rate load of the latency runs is bench/load-node.ts, which paces and pipelines'
        : 'bench/load-node.ts (pipelining), smtp-source not installed',
    settings: `${COUNT.get(SMALL)} messages of 4 KiB and ${COUNT.get(LARGE)} of 100 KiB a run; the relay with its default settings but for maxConnections: 20 upstream and maxClientsPerIp: 50; Postfix + OpenDKIM with their defaults but for loopback ports, relaxed/relaxed and no chroot.`,
    signer,
    growth,
    systems: systems.map((s) => s.name),
    peer: peerName,
    sizes: [SMALL, LARGE],
    runs: e2e.runs,
    pipelined: pipelined.runs,
    latencies: e2e.latencies,
    raw: e2e.raw,
    big,
    stalls,
    skipped,
    vsPeer,
    verdicts: verdicts(
      {
        rate: (s, size) => e2e.medianRate(s, size),
        vsPeer,
        peakPss,
        p99: (s, size) => e2e.latencies.find((l) => l.system === s && l.size === size)?.p99,
        bigPss: big.find((b) => b.system === relayForTargets)?.peakPss,
        signCheck: signCheck[0]?.ratio,
        cpu: (s, size) => {
          const runs = e2e.runs.filter((x) => x.system === s && x.size === size);
          return runs.length === 0 ? undefined : median(runs.map((x) => x.cpu.system));
        },
        rsaSignUs: e2e.raw.length === 0 ? undefined : 1e6 / median(e2e.raw.map((x) => x.oneCore)),
      },
      { queue: queueRsa, sync: syncRsa, queueMissing: queueMissing || 'queue mode did not run' },
    ),
  };
  say('\nTargets:');
  for (const v of results.verdicts) say(`  ${v.met === undefined ? 'not measured' : v.met ? 'met    ' : 'NOT met'}  ${v.target}: ${v.measured}`);
  await cleanUp();
  results.minutes = (now() - t0) / 60000;
  const section = render(results);
  if (process.env.BENCH_WRITE !== '0') {
    writeSection(join(import.meta.dirname, '..', 'BENCHMARKS.md'), section);
    say(
      `\nWritten to BENCHMARKS.md (${results.minutes.toFixed(1)} min in all; load average ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}).`,
    );
  } else {
    say(`\n${section}`);
  }
} finally {
  await cleanUp();
}
