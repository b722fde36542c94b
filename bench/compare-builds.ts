// Two builds of the relay side by side (queue mode unless BENCH_MODE=sync), RSA-2048: this tree and
// another checkout (BENCH_OTHER=/path/to/checkout, with its node_modules), in
// alternating rounds under the same load, so a change is judged on this
// shared machine by CPU per message of each relay's process tree and msg/s
// measured minutes apart, not hours.
//
//   BENCH_OTHER=/tmp/base BENCH_ROUNDS=3 node bench/compare-builds.ts
//
// Settings: BENCH_MODE (queue, or sync), BENCH_ROUNDS (3), BENCH_SESSIONS (20), BENCH_SMALL_MESSAGES (600),
// BENCH_LARGE_MESSAGES (80), BENCH_LOAD_SECONDS (40), BENCH_CPU_PROF=<dir>
// (each relay writes a V8 CPU profile there when it stops), BENCH_THIS_ARGS and
// BENCH_OTHER_ARGS (Node.js options for each build), BENCH_WARMUP=0 (no
// unmeasured round first).
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { EndToEnd, type SystemUnderTest } from './e2e.ts';
import { defaultTool } from './load.ts';
import { load1, machine } from './machine.ts';
import { startRelayProcess, type RelaySetup, type RunningRelayProcess } from './relay.ts';
import { CountingSink } from './sink.ts';
import { median } from './stats.ts';
import { LARGE, SMALL } from './targets.ts';

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const other = process.env.BENCH_OTHER;
if (!other) {
  console.error('compare-builds: set BENCH_OTHER to the checkout to compare with (its node_modules installed)');
  process.exit(2);
}
const mode = process.env.BENCH_MODE === 'sync' ? 'sync' : 'queue';
const say = (line: string) => console.log(line);
const host = machine();
say(`compare-builds, ${new Date().toISOString()}: ${host.cores} × ${host.cpu}, Node ${host.node}; load average ${load1().toFixed(2)}`);

const scratch = mkdtempSync(join(tmpdir(), 'dkim-relay-compare-'));
const stops: (() => Promise<void>)[] = [];
const profiles = process.env.BENCH_CPU_PROF;
// Node.js options for each build (BENCH_THIS_ARGS, BENCH_OTHER_ARGS), e.g. the same tree twice with another heap setting.
const extraArgs = [process.env.BENCH_THIS_ARGS, process.env.BENCH_OTHER_ARGS].map((args) => (args ?? '').split(/\s+/).filter(Boolean));
const nodeArgs = (name: string, i: number) => {
  if (!profiles) return extraArgs[i]!;
  mkdirSync(join(profiles, name), { recursive: true });
  return [...extraArgs[i]!, '--cpu-prof', `--cpu-prof-dir=${resolve(profiles, name)}`];
};
try {
  const sink = await CountingSink.start();
  stops.push(() => sink.close());
  const builds: { name: string; start: (setup: RelaySetup) => Promise<RunningRelayProcess> }[] = [
    { name: 'this tree', start: startRelayProcess },
    { name: `other (${other})`, start: ((await import(resolve(other, 'bench', 'relay.ts'))) as typeof import('./relay.ts')).startRelayProcess },
  ];
  const systems: SystemUnderTest[] = [];
  for (const [i, build] of builds.entries()) {
    const dir = mkdtempSync(join(scratch, `build${i}-`));
    const relay = await build.start({ dir, mode, algorithm: 'rsa', sinkPort: sink.port, nodeArgs: nodeArgs(`build${i}`, i) });
    stops.push(() => relay.stop());
    systems.push({ name: build.name, port: relay.port, pids: () => [relay.pid], records: relay.records });
    say(`  ${build.name}: PID ${relay.pid}, port ${relay.port}`);
  }
  const count = new Map([
    [SMALL, env('BENCH_SMALL_MESSAGES', 600)],
    [LARGE, env('BENCH_LARGE_MESSAGES', 80)],
  ]);
  const e2e = new EndToEnd(
    sink,
    {
      sessions: env('BENCH_SESSIONS', 20),
      rounds: env('BENCH_ROUNDS', 3),
      count,
      seconds: env('BENCH_LOAD_SECONDS', 40),
      latencySeconds: 0,
      probeRate: 0,
      warmup: process.env.BENCH_WARMUP !== '0',
      tool: defaultTool(),
    },
    say,
  );
  // A size given no messages (BENCH_LARGE_MESSAGES=0, say) is left out, not reported as NaN msg/s.
  const sizes = [SMALL, LARGE].filter((size) => count.get(size)! > 0);
  for (const size of sizes) {
    say(`\n${size / 1024} KiB, ${mode} mode, RSA-2048:`);
    await e2e.throughput(systems, size);
  }
  say('\nMedians:');
  for (const size of sizes) {
    for (const system of systems) {
      const runs = e2e.runs.filter((r) => r.system === system.name && r.size === size);
      say(
        `  ${system.name.padEnd(40)} ${String(size / 1024).padStart(4)} KiB: ${median(runs.map((r) => r.rate)).toFixed(0)} msg/s, ${median(runs.map((r) => r.cpu.system)).toFixed(0)} µs CPU/msg (main thread ${median(runs.map((r) => r.cpu.threads.main)).toFixed(0)}, kernel ${median(runs.map((r) => r.cpu.threads.kernel)).toFixed(0)})`,
      );
    }
  }
} finally {
  for (const stop of stops.reverse()) await stop().catch((err: Error) => say(`  stopping: ${err.message}`));
  rmSync(scratch, { recursive: true, force: true });
}
