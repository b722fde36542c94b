// The results as Markdown for BENCHMARKS.md: the generated section between
// two markers is replaced by each run; what is written around it stays.
import { readFileSync, writeFileSync } from 'node:fs';
import type { Latency, RawRsa, Run } from './e2e.ts';
import type { Machine } from './machine.ts';
import { LINEAR_AT_8X } from './cpu-growth.ts';
import type { GrowthRow } from './growth.ts';
import type { SignerRow } from './signer.ts';
import { median } from './stats.ts';
import type { Verdict } from './targets.ts';

export const BEGIN = '<!-- npm run bench: results begin -->';
export const END = '<!-- npm run bench: results end -->';

export interface Results {
  date: Date;
  command: string;
  minutes: number;
  machine: Machine;
  loads: number[];
  loadTool: string;
  settings: string;
  signer: SignerRow[];
  /** CPU time at 8× the input over 1×, case by case (bench/growth.ts); absent when left out. */
  growth?: GrowthRow[];
  systems: string[];
  peer?: string;
  sizes: number[];
  runs: Run[];
  /** The 4 KiB throughput again with a pipelining load, when the main load does not pipeline. */
  pipelined?: Run[];
  latencies: Latency[];
  raw: RawRsa[];
  big: { system: string; seconds: number; peakPss: number; received: number; verified?: { passed: number; checked: number } }[];
  stalls?: { system: string; probes: number; p50Ms: number; maxMs: number; peakPss: number; received: number }[];
  verdicts: Verdict[];
  skipped: string[];
  vsPeer(system: string, size: number): number | undefined;
}

const MiB = 1024 * 1024;
const kib = (size: number) => `${size / 1024} KiB`;

export function render(r: Results): string {
  const out: string[] = [];
  const line = (s = '') => out.push(s);
  line(`## ${r.date.toISOString().slice(0, 10)} — \`${r.command}\``);
  line();
  line(
    `Machine: ${r.machine.cores} × ${r.machine.cpu}, ${r.machine.memoryGiB.toFixed(1)} GiB, Node ${r.machine.node}. ` +
      `Load average (1 min): ${r.loads[0]!.toFixed(1)} before the run, ${Math.min(...r.loads.slice(1)).toFixed(1)}–${Math.max(...r.loads.slice(1)).toFixed(1)} during it (its own load included) on ${r.machine.cores} cores. ` +
      (r.loads[0]! >= 1 ? 'The machine was not idle when the run began: read absolute rates as those of a busy host, and compare ratios. ' : '') +
      `The run took ${r.minutes.toFixed(1)} min. ${r.settings} Load generator: ${r.loadTool}.`,
  );
  line();
  if (r.skipped.length > 0) {
    line('Not measured in this run:');
    for (const s of r.skipped) line(`- ${s}`);
    line();
  }
  line('### Targets');
  line();
  line('| target | this run | met |');
  line('|---|---|---|');
  for (const v of r.verdicts) line(`| ${v.target} | ${v.measured} | ${v.met === undefined ? 'not measured' : v.met ? 'yes' : '**no**'} |`);
  line();
  line('### End to end: 20 sessions → signer → sink');
  line();
  line(
    `Median of ${Math.max(...r.runs.map((x) => x.round))} rounds (lowest–highest in brackets); the systems took turns within each round. "× peer" is the median over the rounds of the ratio to ${r.peer ?? 'the peer'} in the same round. Latency: a probe connection sending one message at a time while the load runs at half the system's median rate; from the probe's final "." to the sink having the message. "disk": in the same seconds, a 4 KiB file written, fsynced, renamed and its folder fsynced every 50 ms beside the spools (bench/disk-probe.ts), p50 / p99 in ms: what making one message durable costs at that moment, the floor under queue mode's latency. "CPU per message": CPU time over the messages received, of the system's processes and of the whole machine (load generator, sink and kernel included), medians over the rounds; with ${r.machine.cores} cores the machine spends at most ${r.machine.cores} s of CPU a second, so ${r.machine.cores} × 10⁶ / (machine µs) is the highest rate any system with that cost could reach here. "main thread": the relay's event loop alone (/proc/PID/task); 10⁶ / (main thread µs) is the rate at which that one loop is saturated. "kernel": of the relay's CPU, what the kernel spent in its threads (system calls; on loopback the receiving side's TCP work too, done in the sender's system call): the machine's share, not the code's.`,
  );
  line();
  line('| system | size | msg/s | × peer | CPU per message: system / machine | added latency p50 / p99 | peak PSS | dkimpy spot-check |');
  line('|---|---|---|---|---|---|---|---|');
  for (const size of r.sizes) {
    for (const system of r.systems) {
      const runs = r.runs.filter((x) => x.system === system && x.size === size);
      if (runs.length === 0) continue;
      const lat = r.latencies.find((x) => x.system === system && x.size === size);
      const checked = runs.flatMap((x) => (x.verified ? [x.verified] : []));
      const passed = checked.reduce((s, v) => s + v.passed, 0);
      const total = checked.reduce((s, v) => s + v.checked, 0);
      line(
        `| ${system} | ${kib(size)} | ${rateCell(runs)} | ${ratioCell(r.vsPeer(system, size))} | ${cpuCell(system, runs)} | ` +
          `${lat ? `${lat.p50.toFixed(1)} / ${lat.p99.toFixed(1)} ms at ${lat.rate.toFixed(0)} msg/s (disk ${lat.disk.p50.toFixed(1)} / ${lat.disk.p99.toFixed(1)})` : ''} | ` +
          `${pssCell(runs)} | ${total > 0 ? `${passed}/${total} pass` : ''} |`,
      );
    }
  }
  line();
  if (r.pipelined && r.pipelined.length > 0) pipelinedTable(r.pipelined, r.peer, line);
  const one = median(r.raw.map((x) => x.oneCore));
  const all = median(r.raw.map((x) => x.allCores));
  const cores = r.raw[0]?.cores ?? r.machine.cores;
  line(
    `Raw node:crypto RSA-2048 on this machine, measured between the rounds: ${one.toFixed(0)} signatures/s on one core, ${all.toFixed(0)}/s on ${cores} cores (worker threads), medians.`,
  );
  line();
  const rsa = r.systems.filter((s) => s.startsWith('dkim-relay') && s.includes('RSA'));
  if (rsa.length > 0) {
    line('| dkim-relay, RSA-2048 | size | msg/s | of raw RSA, one core | of raw RSA, all cores |');
    line('|---|---|---|---|---|');
    for (const system of rsa) {
      for (const size of r.sizes) {
        const rates = r.runs.filter((x) => x.system === system && x.size === size).map((x) => x.rate);
        if (rates.length === 0) continue;
        const m = median(rates);
        line(`| ${system} | ${kib(size)} | ${m.toFixed(0)} | ${((m / one) * 100).toFixed(0)} % | ${((m / all) * 100).toFixed(0)} % |`);
      }
    }
    line();
  }
  if (r.big.length > 0) {
    line('### Four concurrent 25 MB messages');
    line();
    line('| system | at the sink | time | peak PSS | dkimpy |');
    line('|---|---|---|---|---|');
    for (const b of r.big)
      line(
        `| ${b.system} | ${b.received}/4 | ${b.seconds.toFixed(1)} s | ${(b.peakPss / 1e6).toFixed(0)} MB | ${b.verified ? `${b.verified.passed}/${b.verified.checked} pass` : ''} |`,
      );
    line();
  }
  if (r.stalls && r.stalls.length > 0) {
    line('### Small messages during six concurrent 30 MB ones');
    line();
    line(
      'Six sessions each send a 30 MB message of 8-bit text in 1 MB lines (re-encoded to quoted-printable before signing); meanwhile a 4 KiB message goes every 100 ms on a session of its own. The wait is from its final dot to its 250.',
    );
    line();
    line('| system | small messages | wait p50 | wait max | peak PSS | at the sink |');
    line('|---|---|---|---|---|---|');
    for (const s of r.stalls)
      line(`| ${s.system} | ${s.probes} | ${s.p50Ms.toFixed(0)} ms | ${s.maxMs.toFixed(0)} ms | ${(s.peakPss / 1e6).toFixed(0)} MB | ${s.received} |`);
    line();
  }
  const notes = r.runs.filter((x) => x.note);
  if (notes.length > 0) {
    line('Runs that did not go cleanly:');
    for (const x of notes) line(`- ${x.system}, ${kib(x.size)}, round ${x.round}: ${x.note}`);
    line();
  }
  line('### The signer alone, in-process');
  line();
  line('| measurement | result | limit, same rounds | ratio |');
  line('|---|---|---|---|');
  for (const row of r.signer) line(`| ${row.what} | ${row.result} | ${row.limit} | ${(row.ratio * 100).toFixed(0)} % |`);
  if (r.growth && r.growth.length > 0) {
    line();
    line(`### Work at 8× the input (CPU time of the process; linear stays under ${LINEAR_AT_8X}×, quadratic takes 64×)`);
    line();
    line('| input | 8× over 1× | |');
    line('|---|---|---|');
    for (const row of r.growth) line(`| ${row.what} | ${row.ratio.toFixed(1)}× | ${row.ratio < LINEAR_AT_8X ? 'linear' : '**not linear**'} |`);
  }
  return out.join('\n');
}

/** The same 4 KiB load from clients that pipeline, as the relay's real clients do; × peer by round, as above. */
function pipelinedTable(runs: Run[], peer: string | undefined, line: (text?: string) => void): void {
  line(
    `The 4 KiB load again from clients that pipeline MAIL, RCPT and DATA (RFC 2920), as Exchange, Postfix and nodemailer do: bench/load-node.ts, ${Math.max(...runs.map((x) => x.round))} rounds, run after the rows above, so without a warm-up round of its own; its peak PSS is that of a process that has just taken the 100 KiB load, not the figure of the 4 KiB memory target.`,
  );
  line();
  line('| system, pipelining load | size | msg/s | × peer | CPU per message: system / machine | peak PSS |');
  line('|---|---|---|---|---|---|');
  for (const system of [...new Set(runs.map((x) => x.system))]) {
    const mine = runs.filter((x) => x.system === system);
    const size = mine[0]!.size;
    line(
      `| ${system} | ${kib(size)} | ${rateCell(mine)} | ${ratioCell(ratioToPeer(runs, system, peer, size))} | ${cpuCell(system, mine)} | ${pssCell(mine)} |`,
    );
  }
  line();
}

/** The median over the rounds of `system`'s rate over the peer's in the same round; undefined for the peer itself. */
export function ratioToPeer(runs: Run[], system: string, peer: string | undefined, size: number): number | undefined {
  if (!peer || system === peer) return undefined;
  const ratios = runs
    .filter((r) => r.system === system && r.size === size)
    .flatMap((r) => runs.filter((p) => p.system === peer && p.size === size && p.round === r.round).map((p) => r.rate / p.rate));
  return ratios.length > 0 ? median(ratios) : undefined;
}

/** msg/s of one system's runs: median (lowest–highest), and what never reached the sink. */
function rateCell(runs: Run[]): string {
  const rates = runs.map((x) => x.rate);
  const lost = runs.reduce((s, x) => s + (x.sent - x.received), 0);
  return `${median(rates).toFixed(0)} (${Math.min(...rates).toFixed(0)}–${Math.max(...rates).toFixed(0)})${lost > 0 ? `, ${lost} missing` : ''}`;
}

const ratioCell = (vs: number | undefined) => (vs === undefined ? '' : `${vs.toFixed(2)}×`);

/**
 * CPU per message, system (with the relay's main thread and the kernel's part) / machine, medians over
 * the runs. The kernel's part is read from live threads: the peer's processes that end during a run
 * (Postfix's smtpd and cleanup) take theirs with them, so only the relay's is shown.
 */
function cpuCell(system: string, runs: Run[]): string {
  const m = (pick: (r: Run) => number) => median(runs.map(pick)).toFixed(0);
  const parts = system.startsWith('dkim-relay') ? ` (main thread ${m((x) => x.cpu.threads.main)}; kernel ${m((x) => x.cpu.threads.kernel)})` : '';
  return `${m((x) => x.cpu.system)}${parts} / ${m((x) => x.cpu.machine)} µs`;
}

const pssCell = (runs: Run[]) => `${(Math.max(...runs.map((x) => x.peakPss)) / MiB).toFixed(0)} MiB`;

/** Puts `section` between the markers of `path`, or after its first paragraph block when it has none yet. */
export function writeSection(path: string, section: string): void {
  const text = readFileSync(path, 'utf8');
  const block = `${BEGIN}\n${section}\n${END}`;
  const begin = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  const next = begin >= 0 && end > begin ? text.slice(0, begin) + block + text.slice(end + END.length) : `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(path, next);
}
