// Runs one fault case inside a namespace of its own (started by
// namespace.ts): brings loopback up, runs the case, writes its row, and exits
// 0 if it passed. Its output is the case's report.
import { execFileSync } from 'node:child_process';
import { CASES } from '../cases.ts';
import { newContext } from './kit.ts';
import { writeRow } from './rows.ts';

const id = process.argv[2];
const entry = CASES.find((c) => c.id === id);
if (!entry) {
  console.error(`no fault case ${id}`);
  process.exit(2);
}
execFileSync('ip', ['link', 'set', 'lo', 'up']);

const started = Date.now();
const ctx = newContext();
let error: Error | undefined;
try {
  const run = await entry.load();
  await run(ctx);
} catch (err) {
  error = err as Error;
}
for (const stop of ctx.cleanup.reverse()) {
  try {
    await stop();
  } catch {
    // cleanup goes on
  }
}
writeRow({
  id: entry.id,
  fault: entry.fault,
  ...ctx.row,
  passed: error === undefined,
  ...(error ? { error: String(error.message).split('\n')[0]!.replaceAll(ctx.dir, '<dir>').replace(/:$/, '') } : {}),
  seconds: Math.round((Date.now() - started) / 100) / 10,
  recordedAt: new Date().toISOString(),
});
console.log(JSON.stringify({ case: entry.id, ...ctx.row, seconds: (Date.now() - started) / 1000 }));
if (error) {
  // What the relays said beyond info and routine deferrals, then the failure itself, last, where a reader of the tail finds it.
  for (const relay of ctx.relays) {
    const notable = relay
      .output()
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.startsWith('{"level":"info"') && !l.includes('"recipient deferred"'));
    console.error(`--- relay pid ${relay.child.pid}, last ${Math.min(40, notable.length)} lines beyond info:\n${notable.slice(-40).join('\n')}`);
  }
  console.error(error.stack ?? error.message);
  process.exit(1);
}
process.exit(0);
