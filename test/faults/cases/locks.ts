// Another process holds a write transaction on one of the relay's SQLite
// databases for 10 s (BEGIN IMMEDIATE, from python3's sqlite3: code that
// shares nothing with the relay's), while mail flows.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { startDnsServer } from '../../helpers/dns-server.ts';
import { runLoad } from '../support/load.ts';
import { describeReplies, everyAcceptedDelivered, relayAndHost, stillUp, unsigned, type CaseContext } from '../support/kit.ts';
import { eventually, metricLines, metricsText } from '../support/relay.ts';

const LOAD = { count: 50, sessions: 5 };
const HOLD_SECONDS = 10;

const HOLDER = `
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute('BEGIN IMMEDIATE')
print('locked', flush=True)
time.sleep(float(sys.argv[2]))
db.execute('COMMIT')
print('released', flush=True)
`;

/** Starts the holder; resolves once it holds the lock, with a promise of its release. */
async function holdWriteLock(ctx: CaseContext, file: string): Promise<{ released: Promise<void> }> {
  const child = spawn('python3', ['-c', HOLDER, file, String(HOLD_SECONDS)], { stdio: ['ignore', 'pipe', 'inherit'] });
  ctx.cleanup.push(() => child.kill('SIGKILL'));
  let out = '';
  const seen = (text: string) =>
    new Promise<void>((resolve, reject) => {
      const check = () => (out.includes(text) ? resolve() : undefined);
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        check();
      });
      child.once('exit', (code) => (out.includes(text) ? resolve() : reject(new Error(`lock holder exited ${code} before "${text}"`))));
      check();
    });
  await seen('locked');
  return { released: seen('released') };
}

export async function queueDbLocked(ctx: CaseContext): Promise<void> {
  const { relay, host } = await relayAndHost(ctx);
  const lock = await holdWriteLock(ctx, join(ctx.dir, 'spool', 'queue.db'));
  const started = Date.now();
  const outcomes = await runLoad({ port: relay.port(), tag: 'qlock', ...LOAD });
  const loadSeconds = Math.round((Date.now() - started) / 1000);
  stillUp(relay);
  assert.ok(
    outcomes.every((o) => !/^5/.test(o.reply)),
    `never a permanent refusal: ${describeReplies(outcomes)}`,
  );
  await lock.released;
  await everyAcceptedDelivered(ctx, host, outcomes);
  stillUp(relay);
  const named = relay
    .output()
    .split('\n')
    .filter((l) => /is locked|SQLITE_BUSY/i.test(l)).length;
  if (outcomes.some((o) => !o.reply.startsWith('250'))) assert.ok(named > 0, 'a message refused for the lock: the log says why');
  ctx.row.does = `waits for the lock (the load took ${loadSeconds} s)${named > 0 ? `; the log names the locked database (${named} line${named === 1 ? '' : 's'})` : ''}; delivers everything after`;
  ctx.row.sees = describeReplies(outcomes);
}

export async function keysDbLocked(ctx: CaseContext): Promise<void> {
  // A DNS server that answers, so that every pass (each second) has observations to write down.
  const dns = await startDnsServer();
  ctx.cleanup.push(() => dns.close());
  const { relay, host } = await relayAndHost(ctx, { rotation: '{check: "* * * * * *"}', dns: `{timeoutSeconds: 1, resolvers: ["${dns.address}"]}` });
  const lock = await holdWriteLock(ctx, join(ctx.dir, 'keys', 'keys.db'));
  const mark = relay.output().length;
  const started = Date.now();
  const outcomes = await runLoad({ port: relay.port(), tag: 'klock', ...LOAD });
  const loadSeconds = Math.round((Date.now() - started) / 1000);
  await relay.waitFor('is locked', 20_000, mark);
  stillUp(relay);
  // A background task that failed is counted under its name.
  const failures = await eventually(
    'dkim_relay_background_failures_total',
    10_000,
    async () => metricLines(await metricsText(relay), 'dkim_relay_background_failures_total').find((l) => !l.endsWith(' 0')),
    relay,
  );
  await lock.released;
  await everyAcceptedDelivered(ctx, host, outcomes);
  assert.deepEqual(unsigned(host), [], 'every message delivered is signed');
  stillUp(relay);
  ctx.row.does = `signs on with the keys it has (the load took ${loadSeconds} s); the background task that could not write is logged and counted (\`${failures.split(' ')[0]}\`), and runs again`;
  ctx.row.sees = describeReplies(outcomes);
}
