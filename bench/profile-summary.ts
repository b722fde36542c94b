// Where an event loop's time went, from a V8 CPU profile (node --cpu-prof, or
// BENCH_CPU_PROF with bench/compare-builds.ts): self time summed by who does
// the work — the kernel's side of system calls, the relay's own code, each
// library, V8's garbage collector — so that what is the machine's (a system
// call, a signature) can be told from what is code.
//
//   node bench/profile-summary.ts PROFILE.cpuprofile [messages]
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [file, messagesArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: node bench/profile-summary.ts PROFILE.cpuprofile [messages]');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const messages = Number(messagesArg ?? 0);

/** Native functions the profile names without a script: bindings into libuv and the kernel. */
const SYSCALLS = new Set([
  'openFileHandle',
  'read',
  'close',
  'unlink',
  'fsync',
  'fdatasync',
  'fchmod',
  'rename',
  'stat',
  'lstat',
  'fstat',
  'open',
  'writev',
  'writeBuffer',
  'writeUtf8String',
  'writeString',
  'writeLatin1String',
  'readFileUtf8',
  'mkdir',
  'readdir',
  'ftruncate',
  'writeFileUtf8',
]);

function category(frame: ProfileNode['callFrame']): string {
  const { functionName: name, url } = frame;
  if (name === '(idle)') return 'idle';
  if (name === '(garbage collector)') return 'V8: garbage collection';
  if (name === '(program)') return 'V8: compiling and running outside JavaScript';
  if (!url) return SYSCALLS.has(name) ? 'system calls (files, sockets, pipes)' : 'native (buffers, crypto bindings, postMessage, …)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1] === 'better-sqlite3' ? 'SQLite (better-sqlite3)' : `library: ${pkg[1]}`;
  const own = /\/src\/([^/]+)\//.exec(url);
  if (own) return `ours: src/${own[1]}/`;
  if (url.startsWith('node:internal/crypto')) return 'node:crypto (hashing, keys)';
  if (url.startsWith('node:')) return 'Node.js (streams, promises, timers, buffers)';
  return 'other';
}

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const spent = new Map<string, number>();
profile.samples.forEach((id, i) => {
  const c = category(byId.get(id)!.callFrame);
  spent.set(c, (spent.get(c) ?? 0) + (profile.timeDeltas[i] ?? 0));
});
const busy = [...spent].filter(([c]) => c !== 'idle').reduce((sum, [, us]) => sum + us, 0);
console.log(
  `busy ${(busy / 1000).toFixed(0)} ms${messages > 0 ? `, ${(busy / messages).toFixed(0)} µs a message` : ''}; idle ${((spent.get('idle') ?? 0) / 1000).toFixed(0)} ms`,
);
console.log('| who | ms | share |' + (messages > 0 ? ' µs a message |' : ''));
console.log('|---|---|---|' + (messages > 0 ? '---|' : ''));
const row = (who: string, us: number) =>
  console.log(`| ${who} | ${(us / 1000).toFixed(0)} | ${((us / busy) * 100).toFixed(1)} % |` + (messages > 0 ? ` ${(us / messages).toFixed(0)} |` : ''));
const rows = [...spent].filter(([c]) => c !== 'idle').sort((a, b) => b[1] - a[1]);
// Below half a percent each, the parts are summed: start-up's command line and configuration, mostly.
for (const [c, us] of rows.filter(([, us]) => us >= busy / 200)) row(c, us);
const small = rows.filter(([, us]) => us < busy / 200);
if (small.length > 0)
  row(
    `${small.length} others under 0.5 % each`,
    small.reduce((sum, [, us]) => sum + us, 0),
  );
