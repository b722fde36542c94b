// Where the relay's memory goes: the real daemon in queue mode (RSA-2048)
// as a child process, its PSS right after start and at the peak of a
// 20-session load of 4 KiB messages (smtp-source when installed), with the
// peak's mappings sorted into kinds from /proc/PID/smaps and the main
// thread's V8 heap from its own metrics.
//
//   node bench/memory-profile.ts [--messages 6000] [--seconds 25] [--sessions 20]
//     [--node-arg=--max-semi-space-size=4 ...] [--env MALLOC_ARENA_MAX=2 ...]
//
// Prints one JSON line. Bounded: the load stops after --seconds.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runLoad } from './load.ts';
import { load1 } from './machine.ts';
import { benchMessage } from './message.ts';
import { familyPss } from './memory.ts';
import { startRelayProcess, warmCompileCache } from './relay.ts';
import { CountingSink } from './sink.ts';
import { now, sleep } from './stats.ts';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '6000' },
    seconds: { type: 'string', default: '25' },
    sessions: { type: 'string', default: '20' },
    size: { type: 'string', default: '4096' },
    'node-arg': { type: 'string', multiple: true, default: [] },
    env: { type: 'string', multiple: true, default: [] },
  },
});

const MiB = 1048576;
const mib = (bytes: number) => Math.round((bytes / MiB) * 10) / 10;

/** PSS of one process by kind of mapping, in bytes. */
export function pssByKind(pid: number): Record<string, number> {
  const kinds: Record<string, number> = {};
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  } catch {
    return kinds;
  }
  interface Mapping {
    start: number;
    end: number;
    perms: string;
    path: string;
    pss: number;
  }
  const maps: Mapping[] = [];
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      maps.push({ start: parseInt(head[1]!, 16), end: parseInt(head[2]!, 16), perms: head[3]!, path: head[4]!, pss: 0 });
      continue;
    }
    const pss = /^Pss:\s+(\d+) kB/.exec(line);
    if (pss && maps.length > 0) maps[maps.length - 1]!.pss = Number(pss[1]) * 1024;
  }
  const ARENA = 64 * MiB;
  maps.forEach((m, i) => {
    let kind: string;
    if (m.path === '[heap]') kind = 'malloc main arena ([heap])';
    else if (m.path === '[stack]') kind = 'stacks';
    else if (m.path.endsWith('/node')) kind = 'node binary';
    else if (m.path.startsWith('/')) kind = /better_sqlite3/.test(m.path) ? 'better-sqlite3 binary' : 'other files (libs, ICU)';
    else if (m.path.startsWith('[')) kind = 'other';
    else {
      const next = maps[i + 1];
      const previous = maps[i - 1];
      // glibc's non-main arenas: 64 MiB reserved and aligned, the used part rw, the rest PROT_NONE.
      const arena =
        m.start % ARENA === 0 &&
        (m.end - m.start === ARENA || (next && next.start === m.end && next.perms === '---p' && next.path === '' && next.end - m.start === ARENA));
      if (arena) kind = 'malloc thread arenas';
      else if (previous && previous.end === m.start && previous.perms === '---p' && previous.end - previous.start <= 64 * 1024 && m.perms === 'rw-p')
        kind = 'stacks';
      else kind = 'anonymous (V8 heaps, large buffers)';
    }
    kinds[kind] = (kinds[kind] ?? 0) + m.pss;
  });
  return kinds;
}

const threadsOf = (pid: number): number => Number(/^Threads:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);

async function heapMetrics(port: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m =
      /^(nodejs_heap_size_total_bytes|nodejs_heap_size_used_bytes|nodejs_external_memory_bytes|nodejs_heap_space_size_total_bytes\{space="(\w+)"\}|process_resident_memory_bytes) (\S+)$/.exec(
        line,
      );
    if (m) out[m[2] ? `space ${m[2]} total` : m[1]!] = mib(Number(m[3]));
  }
  return out;
}

const env = Object.fromEntries(values.env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
const dir = mkdtempSync(join(tmpdir(), 'dkim-relay-memory-'));
const sink = await CountingSink.start();
await warmCompileCache({ mode: 'queue', algorithm: 'rsa', sinkPort: sink.port, nodeArgs: values['node-arg'], env }, dir);
const relay = await startRelayProcess({ dir, mode: 'queue', algorithm: 'rsa', sinkPort: sink.port, nodeArgs: values['node-arg'], env });
try {
  await sleep(3000);
  const idle = {
    pss: mib(familyPss([relay.pid])),
    kinds: Object.fromEntries(Object.entries(pssByKind(relay.pid)).map(([k, v]) => [k, mib(v)])),
    threads: threadsOf(relay.pid),
    heap: await heapMetrics(relay.metricsPort),
  };
  const count = Number(values.messages);
  sink.reset();
  let peak = 0;
  let peakKinds: Record<string, number> = {};
  let heapAtPeak: Record<string, number> = {};
  let sampling = true;
  const sampler = (async () => {
    for (let tick = 0; sampling; tick++) {
      const pss = familyPss([relay.pid]);
      if (pss > peak) {
        peak = pss;
        if (tick % 5 === 0) {
          peakKinds = pssByKind(relay.pid);
          heapAtPeak = await heapMetrics(relay.metricsPort).catch(() => heapAtPeak);
        }
      }
      await sleep(100);
    }
  })();
  const loadBefore = load1();
  const load = await runLoad({
    port: relay.port,
    sessions: Number(values.sessions),
    count,
    message: benchMessage(Number(values.size)),
    dir,
    seconds: Number(values.seconds),
  });
  for (let quiet = 0, seen = -1, until = now() + 30_000; sink.count < count && quiet < 20 && now() < until;) {
    quiet = sink.count === seen ? quiet + 1 : 0;
    seen = sink.count;
    await sleep(100);
  }
  sampling = false;
  await sampler;
  const seconds = (sink.lastAt - load.startedAt) / 1000;
  console.log(
    JSON.stringify({
      nodeArgs: values['node-arg'],
      env,
      load: [loadBefore, load1()].map((l) => Math.round(l * 100) / 100),
      idle,
      loaded: {
        received: sink.count,
        seconds: Math.round(seconds * 10) / 10,
        rate: Math.round(sink.count / seconds),
        peakPss: mib(peak),
        peakKinds: Object.fromEntries(Object.entries(peakKinds).map(([k, v]) => [k, mib(v)])),
        heapAtPeak,
        stopped: load.stopped,
      },
    }),
  );
} finally {
  await relay.stop();
  await sink.close();
  rmSync(dir, { recursive: true, force: true });
}
