// Added latency alone, for one delivery mode, and where a slow message's time
// went: the measurement of `npm run bench` (a probe connection sending 20
// numbered 4 KiB messages a second while a paced load keeps the relay at a
// given rate; added latency = the probe's final "." leaving to the sink having
// it), split into the wait for the relay's reply and, in queue mode, the rest
// (the hand-off to delivery and delivery itself). With --other the same
// measurement runs against a second build, in turns, at the same rate.
//
//   node bench/latency.ts --mode queue [--rate 120] [--seconds 15] [--rounds 3] [--other /tmp/base] [--log DIR]
//     [--this-env NAME=VALUE ...] [--other-env NAME=VALUE ...] [--no-settle]
//
// The probe starts once a second's worth of the paced load has reached the
// sink (--no-settle: with the load, as before): the load generator's own
// start is not the steady half rate the figure is about.
//
// Without --rate, the rate is half of what this tree's relay takes unpaced
// (one round of 1200 messages after a warm-up of 600). With --log, each
// relay's log goes to DIR/relay.PID and the slowest probes are matched to
// their "message queued"/"message" line (its `ms`: DATA to reply inside the
// relay).
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { familyCpuMs } from './cpu.ts';
import { diskProbe } from './disk-probe.ts';
import { runLoad } from './load.ts';
import { load1, machine } from './machine.ts';
import { benchMessage, RECIPIENT } from './message.ts';
import { PROBE_HEADER, PROBE_SENDER } from './probe.ts';
import { startRelayProcess, type DeliveryMode, type RelaySetup, type RunningRelayProcess } from './relay.ts';
import { CountingSink, SETTLE_SECONDS } from './sink.ts';
import { SmtpSession } from './smtp-client.ts';
import { now, percentile, sleep } from './stats.ts';

const { values: args } = parseArgs({
  options: {
    mode: { type: 'string', default: 'queue' },
    rate: { type: 'string' },
    seconds: { type: 'string', default: '15' },
    rounds: { type: 'string', default: '3' },
    other: { type: 'string' },
    log: { type: 'string' },
    'no-settle': { type: 'boolean', default: false },
    size: { type: 'string', default: '4096' },
    'this-env': { type: 'string', multiple: true },
    'other-env': { type: 'string', multiple: true },
  },
});
const mode = args.mode as DeliveryMode;
const seconds = Number(args.seconds);
const rounds = Number(args.rounds);
const size = Number(args.size);
const PROBE_INTERVAL_MS = 50;
const SESSIONS = 20;
const say = (line: string) => console.log(line);
if (args.log) {
  mkdirSync(args.log, { recursive: true });
  process.env.BENCH_RELAY_LOG = join(resolve(args.log), 'relay');
}

interface ProbeTimes {
  id: number;
  /** Final "." left → the relay's reply read. */
  reply: number;
  /** Final "." left → the sink had it. */
  added: number;
}

/** One probe connection: a numbered message every PROBE_INTERVAL_MS, the times of each reply. */
async function probe(port: number): Promise<Map<number, { sentAt: number; repliedAt: number }>> {
  const smtp = await SmtpSession.open(port);
  const sent = new Map<number, { sentAt: number; repliedAt: number }>();
  const start = now();
  try {
    for (let id = 1; now() - start < seconds * 1000; id++) {
      await sleep(start + id * PROBE_INTERVAL_MS - now());
      const { code, lastByteAt, repliedAt } = await smtp.send(PROBE_SENDER, RECIPIENT, benchMessage(size, `${PROBE_HEADER}: ${id}\r\n`));
      if (code === 250) sent.set(id, { sentAt: lastByteAt, repliedAt });
    }
  } finally {
    await smtp.close();
  }
  return sent;
}

interface LogLine {
  ms: number;
  time: string;
  /** An instrumented build's stage marks: ms since DATA began, by stage. */
  marks?: Record<string, number>;
  /** Where the relay says DATA→reply went (signing, spool, commit; or signing, upstream). */
  delays?: Record<string, number>;
}

/** The relay's own log lines for the probes, in the order the probe sent them (one connection: one at a time). */
function probeLogLines(pid: number, from: number): LogLine[] {
  if (!process.env.BENCH_RELAY_LOG) return [];
  const text = readFileSync(`${process.env.BENCH_RELAY_LOG}.${pid}`, 'utf8');
  return text
    .split('\n')
    .filter((l) => l.includes(`"from":"${PROBE_SENDER}"`))
    .map((l) => JSON.parse(l) as LogLine)
    .filter((l) => Date.parse(l.time) >= from);
}

/** An instrumented build's event-loop and GC lines over a window. */
function loopLines(pid: number, from: number, to: number): string | undefined {
  if (!process.env.BENCH_RELAY_LOG) return undefined;
  const lines = readFileSync(`${process.env.BENCH_RELAY_LOG}.${pid}`, 'utf8')
    .split('\n')
    .filter((l) => l.includes('"msg":"loop"'))
    .map((l) => JSON.parse(l) as { time: number | string; p50: number; p99: number; max: number; gcCount: number; gcMs: number; gcMax: number })
    .filter((l) => new Date(l.time).getTime() >= from && new Date(l.time).getTime() <= to);
  if (lines.length === 0) return undefined;
  const p99 = lines.map((l) => l.p99);
  return (
    `event-loop delay per second: p99 ${Math.min(...p99).toFixed(1)}–${Math.max(...p99).toFixed(1)} ms, max ${Math.max(...lines.map((l) => l.max)).toFixed(1)} ms; ` +
    `GC ${lines.reduce((a, l) => a + l.gcCount, 0)} pauses, ${lines.reduce((a, l) => a + l.gcMs, 0).toFixed(0)} ms in all, longest ${Math.max(...lines.map((l) => l.gcMax)).toFixed(1)} ms`
  );
}

/** Stage by stage: each mark minus the one before it, in time order. */
function stages(marks: Record<string, number>): [string, number][] {
  const ordered = Object.entries(marks)
    .filter(([name]) => name !== 't0')
    .sort((a, b) => a[1] - b[1]);
  return ordered.map(([name, at], i) => [name, at - (i === 0 ? 0 : ordered[i - 1]![1])]);
}

const stat = (xs: number[]) =>
  `p50 ${percentile(xs, 50).toFixed(1)}, p90 ${percentile(xs, 90).toFixed(1)}, p99 ${percentile(xs, 99).toFixed(1)}, max ${Math.max(...xs).toFixed(1)}`;

const host = machine();
say(`latency, ${new Date().toISOString()}: ${host.cores} × ${host.cpu}, Node ${host.node}; ${mode} mode, ${size} octets; load average ${load1().toFixed(2)}`);
const scratch = mkdtempSync(join(tmpdir(), 'dkim-relay-latency-'));
const stops: (() => Promise<void>)[] = [];
try {
  const sink = await CountingSink.start();
  stops.push(() => sink.close());
  const builds: { name: string; start: (setup: RelaySetup) => Promise<RunningRelayProcess> }[] = [{ name: 'this tree', start: startRelayProcess }];
  if (args.other) {
    const other = (await import(resolve(args.other, 'bench', 'relay.ts'))) as typeof import('./relay.ts');
    builds.push({ name: `other (${args.other})`, start: other.startRelayProcess });
  }
  const relays: RunningRelayProcess[] = [];
  const envs = [args['this-env'], args['other-env']].map((list) =>
    Object.fromEntries((list ?? []).map((kv) => [kv.split('=')[0]!, kv.slice(kv.indexOf('=') + 1)])),
  );
  for (const [i, build] of builds.entries()) {
    const relay = await build.start({ dir: mkdtempSync(join(scratch, 'relay-')), mode, algorithm: 'rsa', sinkPort: sink.port, env: envs[i] });
    stops.push(() => relay.stop());
    relays.push(relay);
    say(`  ${build.name}: PID ${relay.pid}${Object.keys(envs[i]!).length ? ` with ${JSON.stringify(envs[i])}` : ''}`);
  }
  const message = benchMessage(size);
  // Warm: a relay runs for weeks, its code compiled by the time it matters.
  for (const relay of relays) await runLoad({ port: relay.port, sessions: SESSIONS, count: 600, message, dir: scratch, seconds: 60, tool: 'node' });
  let rate = Number(args.rate ?? NaN);
  if (!(rate > 0)) {
    await sink.drain();
    sink.reset();
    const load = await runLoad({ port: relays[0]!.port, sessions: SESSIONS, count: 1200, message, dir: scratch, seconds: 60, tool: 'node' });
    for (const until = now() + 30_000; sink.count < 1200 && now() < until;) await sleep(100);
    const max = sink.count / ((sink.lastAt - load.startedAt) / 1000);
    rate = max / 2;
    say(`  saturated: ${max.toFixed(0)} msg/s; measuring at ${rate.toFixed(0)} msg/s`);
  }
  const loadRate = Math.max(1, rate - 1000 / PROBE_INTERVAL_MS);
  for (let round = 1; round <= rounds; round++) {
    for (const [i, relay] of relays.entries()) {
      await sink.drain();
      sink.reset();
      const before = load1();
      const startedAt = Date.now();
      const cpuBefore = familyCpuMs([relay.pid]);
      // This process times both ends (the probe's dot, the sink's arrival): its own stalls are in every figure.
      const harness = monitorEventLoopDelay({ resolution: 1 });
      harness.enable();
      const load = runLoad({
        port: relay.port,
        sessions: SESSIONS,
        count: Math.ceil(loadRate * (seconds + SETTLE_SECONDS)),
        message,
        dir: scratch,
        seconds: seconds + SETTLE_SECONDS + 10,
        rate: loadRate,
      });
      if (!args['no-settle']) await sink.settled(loadRate);
      const [sent, disk] = await Promise.all([probe(relay.port), diskProbe(scratch, PROBE_INTERVAL_MS, seconds)]);
      await load;
      harness.disable();
      for (const until = now() + 5000; sink.probes.size < sent.size && now() < until;) await sleep(50);
      const cpu = familyCpuMs([relay.pid]) - cpuBefore;
      const times: ProbeTimes[] = [...sent]
        .filter(([id]) => sink.probes.has(id))
        .map(([id, t]) => ({ id, reply: t.repliedAt - t.sentAt, added: sink.probes.get(id)! - t.sentAt }));
      const added = times.map((t) => t.added);
      say(
        `  round ${round}, ${builds[i]!.name}: ${times.length} probes, load ${before.toFixed(1)}→${load1().toFixed(1)}, relay CPU ${cpu.toFixed(0)} ms\n` +
          `    added  ${stat(added)} ms\n    reply  ${stat(times.map((t) => t.reply))} ms\n` +
          (mode === 'queue' ? `    after  ${stat(times.map((t) => t.added - t.reply))} ms (reply read → at the sink)\n` : '') +
          `    disk   p50 ${percentile(disk, 50).toFixed(1)}, p99 ${percentile(disk, 99).toFixed(1)} ms\n` +
          `    this process's own event-loop delay (probe, sink, disk probe): p99 ${(harness.percentile(99) / 1e6).toFixed(1)}, max ${(harness.max / 1e6).toFixed(1)} ms`,
      );
      const logged = probeLogLines(relay.pid, startedAt);
      const loop = loopLines(relay.pid, startedAt, Date.now());
      if (loop) say(`    ${loop}`);
      const ids = [...sent.keys()];
      const withDelays = logged.filter((l) => l.delays);
      if (withDelays.length > 0) {
        const names = Object.keys(withDelays[0]!.delays!);
        const of = (name: string) => withDelays.map((l) => l.delays![name] ?? 0);
        say(
          `    the relay's delays over ${withDelays.length} probes (ms, p50/p99): ${names.map((n) => `${n} ${percentile(of(n), 50).toFixed(1)}/${percentile(of(n), 99).toFixed(1)}`).join(', ')}`,
        );
      }
      const marked = logged.filter((l) => l.marks).map((l) => stages(l.marks!));
      if (marked.length > 0) {
        const names = [...new Set(marked.flatMap((m) => m.map(([name]) => name)))];
        const of = (name: string) => marked.map((m) => m.find(([n]) => n === name)?.[1] ?? 0);
        say(
          `    stages over ${marked.length} probes (ms, p50/p99): ${names.map((n) => `${n} ${percentile(of(n), 50).toFixed(1)}/${percentile(of(n), 99).toFixed(1)}`).join(', ')}`,
        );
      }
      const slowest = [...times].sort((a, b) => b.added - a.added).slice(0, 5);
      for (const t of slowest) {
        const line = logged[ids.indexOf(t.id)];
        say(
          `    slow probe ${t.id}: added ${t.added.toFixed(1)}, reply ${t.reply.toFixed(1)}${line ? `, relay's own DATA→reply ${line.ms} ms` : ''}` +
            (line?.delays
              ? ` (${Object.entries(line.delays)
                  .map(([n, d]) => `${n} ${d}`)
                  .join(', ')})`
              : '') +
            (line?.marks
              ? `: ${stages(line.marks)
                  .map(([n, d]) => `${n} +${d.toFixed(1)}`)
                  .join(', ')}`
              : ''),
        );
      }
    }
  }
} finally {
  for (const stop of stops.reverse()) await stop().catch(() => undefined);
  rmSync(scratch, { recursive: true, force: true });
}
