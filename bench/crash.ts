// The queue's crash test as a long standalone run, outside CI:
//   node_modules/.bin/node bench/crash.ts --rounds 60 --round-ms 3000 [--clients 4] [--seed 1234]
// The relay (queue mode, its own process) is flooded over SMTP and killed
// with SIGKILL at a random moment of each round, then started again on the
// same spool. Prints the messages acknowledged (250), delivered, lost and
// duplicated, and how close to its kill each duplicate's first copy came;
// exits 1 on any loss.
import { parseArgs } from 'node:util';
import { mulberry32, runCrashRounds } from '../test/queue/crash-harness.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '30' },
    'round-ms': { type: 'string', default: '3000' },
    clients: { type: 'string', default: '4' },
    seed: { type: 'string' },
  },
});
const seed = values.seed === undefined ? Date.now() >>> 0 : Number(values.seed);
const started = Date.now();
console.log(`seed ${seed}`);
const result = await runCrashRounds({
  rounds: Number(values.rounds),
  roundMs: Number(values['round-ms']),
  clients: Number(values.clients),
  random: mulberry32(seed),
  settleMs: 300_000,
  progress: (line) => console.log(line),
});
console.log(
  `rounds ${result.rounds}, ${Math.round((Date.now() - started) / 1000)} s: acknowledged ${result.acknowledged}, delivered ${result.delivered}, ` +
    `lost ${result.lost.length}${result.lost.length ? ` (${result.lost.slice(0, 20).join(', ')})` : ''}, duplicates ${result.duplicates}` +
    ` (${((result.duplicates / Math.max(1, result.acknowledged)) * 100).toFixed(2)} % of acknowledged)`,
);
for (const [same, what] of [
  [true, 'one queued message sent twice'],
  [false, "a client's message queued twice"],
] as const) {
  const leads = result.duplicateCopies
    .filter((d) => d.sameQueueId === same)
    .map((d) => d.leadMs)
    .sort((a, b) => a - b);
  if (leads.length > 0)
    console.log(`${what}: ${leads.length}; first copy at the sink this many ms before the kill: ${leads.map((ms) => ms.toFixed(1)).join(', ')}`);
}
process.exit(result.lost.length > 0 ? 1 : 0);
