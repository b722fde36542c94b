// End to end: the same load against each system under test (dkim-relay in
// each mode and algorithm, and the peers), in alternation, round after round,
// everything delivering to one counting sink.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verifyWithDkimpy } from '../test/helpers/independent-verify.ts';
import { runLoad, type LoadTool } from './load.ts';
import { benchMessage, RECIPIENT, SENDER } from './message.ts';
import { samplePeak } from './memory.ts';
import { familyCpuMs, machineCpuMs, threadCpuDelta, threadCpuMs, type ThreadCpu } from './cpu.ts';
import { diskProbe } from './disk-probe.ts';
import { latencies, probe } from './probe.ts';
import { rawRsaAllCores, rawRsaOneCore } from './raw-rsa.ts';
import { SETTLE_SECONDS, type CountingSink } from './sink.ts';
import { SmtpSession } from './smtp-client.ts';
import { median, now, percentile, sleep } from './stats.ts';

export interface SystemUnderTest {
  name: string;
  port: number;
  pids(): number[];
  records: Record<string, string>;
  /** Postfix + OpenDKIM: the others are compared with it. */
  peer?: boolean;
}

export interface Run {
  system: string;
  size: number;
  round: number;
  sent: number;
  received: number;
  seconds: number;
  rate: number;
  peakPss: number;
  /**
   * CPU time per message received, in µs: the system's processes (exact for
   * one process; for Postfix, whose processes come and go, approximate), the
   * whole machine (load generator and sink included), and the system's
   * threads by kind.
   */
  cpu: { system: number; machine: number; threads: ThreadCpu };
  /** Independent verification of the sampled messages: passed / checked. */
  verified?: { passed: number; checked: number };
  note?: string;
}

export interface Latency {
  system: string;
  size: number;
  rate: number;
  probes: number;
  p50: number;
  p99: number;
  /** The same moments' durable 4 KiB writes (bench/disk-probe.ts): the floor under queue mode's latency. */
  disk: { p50: number; p99: number };
}

export interface RawRsa {
  oneCore: number;
  allCores: number;
  cores: number;
}

export interface Settings {
  sessions: number;
  rounds: number;
  /** Messages per run by size. */
  count: Map<number, number>;
  /** Longest a load may run. */
  seconds: number;
  latencySeconds: number;
  /** Probes a second during the latency runs. */
  probeRate: number;
  /** An unmeasured round before the first (default true). */
  warmup?: boolean;
  tool?: LoadTool;
}

export class EndToEnd {
  readonly runs: Run[] = [];
  readonly latencies: Latency[] = [];
  readonly raw: RawRsa[] = [];
  private readonly sink: CountingSink;
  private readonly settings: Settings;
  private readonly say: (line: string) => void;
  private readonly dir = mkdtempSync(join(tmpdir(), 'dkim-relay-bench-'));

  constructor(sink: CountingSink, settings: Settings, say: (line: string) => void) {
    this.sink = sink;
    this.settings = settings;
    this.say = say;
  }

  /** The raw RSA-2048 limit, measured now: between the systems' runs, so it saw the same neighbours. */
  async measureRaw(): Promise<RawRsa> {
    const oneCore = rawRsaOneCore(1);
    const all = await rawRsaAllCores(1);
    const raw = { oneCore, allCores: all.rate, cores: all.cores };
    this.raw.push(raw);
    this.say(`  raw node:crypto RSA-2048: ${oneCore.toFixed(0)}/s on one core, ${all.rate.toFixed(0)}/s on ${all.cores} cores`);
    return raw;
  }

  /** Rounds of the same load against every system in turn, for one message size. */
  async throughput(systems: SystemUnderTest[], size: number): Promise<void> {
    // A relay runs for weeks: its code is compiled by the time it matters. An unmeasured round
    // first, so that the rounds compare warm systems, not the JIT's first seconds.
    if (this.settings.warmup !== false) for (const system of systems) await this.once(system, size, 0);
    for (let round = 1; round <= this.settings.rounds; round++) {
      await this.measureRaw();
      for (const system of systems) this.runs.push(await this.once(system, size, round));
    }
  }

  private async once(system: SystemUnderTest, size: number, round: number): Promise<Run> {
    const count = this.settings.count.get(size)!;
    // The spot-check: two messages from the middle of the first round.
    await this.sink.drain();
    this.sink.reset(round === 1 ? Math.max(1, Math.floor(count / 3)) : 0, 2);
    const memory = samplePeak(system.pids);
    const cpuBefore = { system: familyCpuMs(system.pids()), machine: machineCpuMs(), threads: threadCpuMs(system.pids()) };
    const load = await runLoad({
      port: system.port,
      sessions: this.settings.sessions,
      count,
      message: benchMessage(size),
      dir: this.dir,
      seconds: this.settings.seconds,
      tool: this.settings.tool,
    });
    // A queueing system may still be delivering when its clients are done.
    let seen = -1;
    for (let quiet = 0, until = now() + 60_000; this.sink.count < count && quiet < 30 && now() < until;) {
      quiet = this.sink.count === seen ? quiet + 1 : 0;
      seen = this.sink.count;
      await sleep(100);
    }
    const peakPss = memory.stop();
    const perMessage = (ms: number) => (ms * 1000) / Math.max(1, this.sink.count);
    const spent = threadCpuDelta(cpuBefore.threads, threadCpuMs(system.pids()));
    const threads = Object.fromEntries(Object.entries(spent).map(([kind, ms]) => [kind, perMessage(ms)])) as unknown as ThreadCpu;
    const cpu = { system: perMessage(familyCpuMs(system.pids()) - cpuBefore.system), machine: perMessage(machineCpuMs() - cpuBefore.machine), threads };
    const seconds = (this.sink.lastAt - load.startedAt) / 1000;
    const run: Run = { system: system.name, size, round, sent: count, received: this.sink.count, seconds, rate: this.sink.count / seconds, peakPss, cpu };
    const notes = [];
    if (load.stopped) notes.push(`load stopped after ${this.settings.seconds} s`);
    if (run.received < count) notes.push(`${count - run.received} of ${count} never reached the sink`);
    if (load.output && run.received < count) notes.push(`${load.tool}: ${load.output.split('\n').slice(-2).join(' ')}`);
    if (notes.length > 0) run.note = notes.join('; ');
    if (this.sink.samples.length > 0) run.verified = await this.verify(this.sink.samples, system.records);
    this.say(
      `  ${system.name.padEnd(34)} ${String(size / 1024).padStart(4)} KiB  ${round === 0 ? 'warm-up' : `round ${round}`}: ${run.received}/${count} in ${seconds.toFixed(1)} s = ${run.rate.toFixed(0)} msg/s, ` +
        `peak PSS ${(peakPss / 1048576).toFixed(0)} MiB, CPU ${cpu.system.toFixed(0)} µs/msg (${threadLine(cpu.threads)}; machine ${cpu.machine.toFixed(0)})${run.verified ? `, dkimpy ${run.verified.passed}/${run.verified.checked} pass` : ''}${run.note ? ` (${run.note})` : ''}`,
    );
    return run;
  }

  /** python3-dkim on each sampled message: a pass needs every DKIM-Signature on it to verify. */
  private async verify(samples: Buffer[], records: Record<string, string>): Promise<{ passed: number; checked: number }> {
    let passed = 0;
    for (const message of samples) {
      try {
        const results = await verifyWithDkimpy(message, records);
        if (results.length > 0 && results.every(Boolean)) passed++;
      } catch (err) {
        this.say(`  dkimpy could not check a sample: ${(err as Error).message.split('\n')[0]}`);
      }
    }
    return { passed, checked: samples.length };
  }

  /** Median msg/s of a system at a size over the rounds. */
  medianRate(system: string, size: number): number | undefined {
    const rates = this.runs.filter((r) => r.system === system && r.size === size).map((r) => r.rate);
    return rates.length > 0 ? median(rates) : undefined;
  }

  /** Latency of a probe while the load runs at half the system's median maximum rate. */
  async latency(system: SystemUnderTest, size: number): Promise<void> {
    const max = this.medianRate(system.name, size);
    if (max === undefined || !(max > 0)) return;
    const half = max / 2;
    const { probeRate, latencySeconds } = this.settings;
    const loadRate = Math.max(1, half - probeRate);
    await this.sink.drain();
    this.sink.reset();
    const load = runLoad({
      port: system.port,
      sessions: this.settings.sessions,
      count: Math.ceil(loadRate * (latencySeconds + SETTLE_SECONDS)),
      message: benchMessage(size),
      dir: this.dir,
      seconds: latencySeconds + SETTLE_SECONDS + 10,
      rate: loadRate,
    });
    await this.sink.settled(loadRate);
    const [run, disk] = await Promise.all([probe(system.port, size, 1000 / probeRate, latencySeconds), diskProbe(this.dir, 1000 / probeRate, latencySeconds)]);
    await load;
    const added = await latencies(run, this.sink.probes);
    const result: Latency = {
      system: system.name,
      size,
      rate: half,
      probes: added.length,
      p50: percentile(added, 50),
      p99: percentile(added, 99),
      disk: { p50: percentile(disk, 50), p99: percentile(disk, 99) },
    };
    this.latencies.push(result);
    this.say(
      `  ${system.name.padEnd(34)} ${String(size / 1024).padStart(4)} KiB  at ${half.toFixed(0)} msg/s: added latency p50 ${result.p50.toFixed(1)} ms, p99 ${result.p99.toFixed(1)} ms over ${added.length} probes; a durable 4 KiB write meanwhile p50 ${result.disk.p50.toFixed(1)} ms, p99 ${result.disk.p99.toFixed(1)} ms` +
        (run.refused > 0 ? ` (${run.refused} probes refused)` : ''),
    );
  }

  /** Four messages of `size` at once, each on its own connection: time and peak PSS. */
  async concurrentBig(
    system: SystemUnderTest,
    size: number,
  ): Promise<{ seconds: number; peakPss: number; received: number; verified?: { passed: number; checked: number } }> {
    const message = benchMessage(size);
    await this.sink.drain();
    this.sink.reset(1, 1);
    const memory = samplePeak(system.pids);
    const start = now();
    const sessions = await Promise.all([1, 2, 3, 4].map(() => SmtpSession.open(system.port)));
    const codes = await Promise.all(sessions.map((s) => s.send(SENDER, RECIPIENT, message).then((r) => r.code)));
    await Promise.all(sessions.map((s) => s.close()));
    for (const until = now() + 60_000; this.sink.count < 4 && now() < until;) await sleep(100);
    const peakPss = memory.stop();
    const seconds = (this.sink.lastAt - start) / 1000;
    const verified = await this.verify(this.sink.samples, system.records);
    this.say(
      `  ${system.name}: four concurrent ${(size / 1e6).toFixed(0)} MB messages, replies ${codes.join(' ')}, ${this.sink.count}/4 at the sink after ${seconds.toFixed(1)} s, ` +
        `peak PSS ${(peakPss / 1e6).toFixed(0)} MB, dkimpy ${verified.passed}/${verified.checked} pass`,
    );
    return { seconds, peakPss, received: this.sink.count, verified };
  }

  /**
   * Whether large messages hold up small ones: six concurrent 30 MB messages
   * of 8-bit text in 1 MB lines (re-encoded before signing when the next hop
   * is 7-bit), while a 4 KiB message is sent every 100 ms on a session of its
   * own. Reports how long the small ones waited for their 250.
   */
  async stall(system: SystemUnderTest): Promise<{ probes: number; p50Ms: number; maxMs: number; peakPss: number; received: number }> {
    const head = benchMessage(0);
    const line = Buffer.concat([Buffer.alloc(1024 * 1024 - 2, 'Größe '), Buffer.from('\r\n')]);
    const big = Buffer.concat([head.subarray(0, head.indexOf('\r\n\r\n') + 4), ...Array.from({ length: 30 }, () => line)]);
    const small = benchMessage(4096);
    await this.sink.drain();
    this.sink.reset(1, 1);
    const memory = samplePeak(system.pids);
    const probe = await SmtpSession.open(system.port);
    const sessions = await Promise.all(Array.from({ length: 6 }, () => SmtpSession.open(system.port)));
    let sending = true;
    const bigDone = Promise.all(sessions.map((s) => s.send(SENDER, RECIPIENT, big))).finally(() => (sending = false));
    const waits: number[] = [];
    for (const until = now() + 120_000; (sending || waits.length < 5) && now() < until;) {
      const sent = await probe.send(SENDER, RECIPIENT, small);
      if (sent.code === 250) waits.push(now() - sent.lastByteAt);
      await sleep(100);
    }
    await bigDone;
    await Promise.all([probe, ...sessions].map((s) => s.close()));
    for (const until = now() + 60_000; this.sink.count < 6 + waits.length && now() < until;) await sleep(100);
    const peakPss = memory.stop();
    waits.sort((a, b) => a - b);
    const result = { probes: waits.length, p50Ms: waits[Math.floor(waits.length / 2)] ?? NaN, maxMs: waits.at(-1) ?? NaN, peakPss, received: this.sink.count };
    this.say(
      `  ${system.name}: six 30 MB 8-bit messages with 1 MB lines; ${result.probes} small messages meanwhile waited p50 ${result.p50Ms.toFixed(0)} ms, at most ${result.maxMs.toFixed(0)} ms; peak PSS ${(peakPss / 1e6).toFixed(0)} MB; ${result.received} at the sink`,
    );
    return result;
  }

  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** "main 2900, workers 1300, pool 400, v8 200; kernel 700": where a system's CPU per message went, and how much of it was the kernel's. */
export function threadLine(t: ThreadCpu): string {
  return [
    ['main', t.main],
    ['workers', t.workers],
    ['pool', t.pool],
    ['v8', t.v8],
    ['ended', t.other],
  ]
    .filter(([, us]) => (us as number) >= 1)
    .map(([kind, us]) => `${kind} ${(us as number).toFixed(0)}`)
    .join(', ')
    .concat(t.kernel >= 1 ? `; kernel ${t.kernel.toFixed(0)}` : '');
}
