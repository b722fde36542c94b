// Faults of the process itself: a second `serve` on the same spool, SIGKILL
// in the middle of a reload, and a reload whose fallback must not move the
// relay to settings it never applied.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { BIN, NODE } from '../../cli/support.ts';
import { runLoad, type Outcome } from '../support/load.ts';
import { describeReplies, everyAcceptedDelivered, logLines, relayAndHost, stillUp, type CaseContext } from '../support/kit.ts';
import { cli, COMPILE_CACHE, eventually, ports, startRelay, writeConfig } from '../support/relay.ts';
import { connect } from 'node:net';
import { queuedIds } from '../../helpers/queued.ts';

const LOAD = { count: 50, sessions: 5 };

/** Whether a connection to `port` is greeted with 220. */
function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.setEncoding('latin1');
    socket.once('data', (d: string) => {
      socket.end('QUIT\r\n');
      resolve(d.startsWith('220'));
    });
    socket.once('error', () => resolve(false));
    socket.setTimeout(5000, () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** `serve` that should not start: its exit code, standard output and error, or 'listening' (then it is killed). */
function serveThatShouldNotStart(config: string, dir: string): Promise<{ code: number | null; stdout: string; stderr: string } | 'listening'> {
  return new Promise((resolve) => {
    const child = spawn(NODE, [BIN, 'serve', '--config', config], {
      cwd: dir,
      env: { PATH: process.env.PATH, LANG: 'C.UTF-8', NODE_COMPILE_CACHE: COMPILE_CACHE },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
      if (stdout.includes('"relay listening"')) {
        child.kill('SIGKILL');
        resolve('listening');
      }
    });
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export async function secondServe(ctx: CaseContext): Promise<void> {
  // The host defers, so the spool holds mail in every state while the second process starts.
  const { relay, host, config } = await relayAndHost(ctx, {}, 'defer');
  const queued = await runLoad({ port: relay.port(), tag: 'before', ...LOAD });
  await host.until(() => host.counts.connections >= 2, 30_000, 'a delivery attempt');
  const [during, second] = await Promise.all([runLoad({ port: relay.port(), tag: 'during', ...LOAD }), serveThatShouldNotStart(config, ctx.dir)]);
  if (second === 'listening') assert.fail('a second serve started on the spool of a running one');
  assert.equal(second.code, 2, second.stderr + second.stdout);
  const lines = second.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line on standard error:\n${second.stderr}`);
  assert.match(lines[0]!, new RegExp(`queue\\.dir .*spool is in use by pid ${relay.child.pid}`));
  stillUp(relay);
  assert.deepEqual(
    during.filter((o) => !o.reply.startsWith('250')),
    [],
    `the running relay takes every message meanwhile: ${describeReplies(during)}`,
  );
  host.behaviour = 'accept';
  host.dropAll();
  await everyAcceptedDelivered(ctx, host, [...queued, ...during]);
  stillUp(relay);
  ctx.row.does = `the second exits 2 with \`${lines[0]!.replace(/\/\S*\/spool/, '<dir>').replace(/pid \d+/, 'pid N')}\` and changes nothing; the first runs on`;
  ctx.row.sees = describeReplies([...queued, ...during]);
}

export async function killDuringReload(ctx: CaseContext): Promise<void> {
  const { relay, host, config } = await relayAndHost(ctx);
  let killed = false;
  const first = runLoad({
    port: relay.port(),
    tag: 'killed',
    ...LOAD,
    onReply: (n) => {
      if (n !== 10) return;
      const mark = relay.output().length;
      relay.child.kill('SIGHUP');
      // The new configuration's relay is starting while the old one drains: kill it there.
      void relay
        .waitFor('"configuration loaded"', 20_000, mark)
        .then(
          () => (killed = true),
          () => undefined,
        )
        .finally(() => relay.kill());
    },
  });
  const before = await first;
  const exit = await relay.exited;
  assert.ok(killed, 'killed during the reload');
  assert.equal(exit.signal, 'SIGKILL');
  const again = await startRelay(config, ctx.dir);
  ctx.relays.push(again);
  ctx.cleanup.push(() => again.kill());
  // The start after the kill says what it found in the spool.
  const recovery = logLines(again, '"queue-recovery"')[0];
  assert.ok(recovery, 'the start-up recovery is logged');
  const found = Object.entries(recovery)
    .filter(([k, v]) => typeof v === 'number' && v > 0 && !['level', 'time', 'pid'].includes(k))
    .map(([k, v]) => `${k} ${String(v)}`);
  const after = await runLoad({ port: again.port(), tag: 'restarted', ...LOAD });
  await everyAcceptedDelivered(ctx, host, [...before, ...after]);
  stillUp(again);
  ctx.row.does = `the next start recovers the spool (logged: ${found.length > 0 ? found.join(', ') : 'nothing to mend'}); every message told 250 is delivered`;
  ctx.row.sees = `while killed: ${describeReplies(before)}; after the restart: ${describeReplies(after)}`;
}

export async function reloadSequence(ctx: CaseContext): Promise<void> {
  const { relay, host, config } = await relayAndHost(ctx, {}, 'defer');
  const { plain } = ports(relay);
  const spool = join(ctx.dir, 'spool');
  const spool2 = join(ctx.dir, 'spool2');
  const write = (extra: Record<string, string>) =>
    writeConfig(config, { dir: ctx.dir, upstreamPort: host.port, extra: { listen: `{host: 127.0.0.1, port: ${plain}, hostname: relay.test}`, ...extra } });
  const reload = async (expect: string) => {
    const mark = relay.output().length;
    relay.child.kill('SIGHUP');
    await relay.waitFor(expect, 20_000, mark);
    await eventually(`a greeting on port ${plain} after the reload`, 20_000, () => greets(plain), relay);
    return relay.output().slice(mark);
  };

  // 1. queue.dir changed: kept until a restart. The warning comes before the listeners are swapped:
  // waiting for it alone, the old listener could answer the greeting and then free the port (which
  // the busy server below could then be given).
  write({ queue: `{dir: ${spool2}, retryAfter: 1s, maxRetryInterval: 2s}` });
  const kept = await reload('configuration reloaded');
  const warning = kept.split('\n').find((l) => l.includes('take effect only at a restart'))!;
  assert.ok(warning.includes(`queue.dir (${spool})`), `the warning names the running spool: ${warning}`);
  // 2. and a port in use: the reload fails and falls back.
  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  ctx.cleanup.push(() => busy.close());
  const busyPort = (busy.address() as { port: number }).port;
  write({ queue: `{dir: ${spool2}, retryAfter: 1s, maxRetryInterval: 2s}`, listen: `{host: 127.0.0.1, port: ${busyPort}, hostname: relay.test}` });
  await reload('reload failed');
  // 3. the file as it was.
  write({});
  await reload('configuration reloaded');
  stillUp(relay);

  const outcomes: Outcome[] = await runLoad({ port: ports(relay).plain, tag: 'reloaded', ...LOAD });
  const inOriginal = queuedIds(spool).length;
  const listed = JSON.parse((await cli(['queue', 'list', '--json'], config, ctx.dir)).stdout) as { messages: unknown[] };
  assert.equal(existsSync(spool2), false, `${spool2} was created: the fallback started the relay on a spool it never applied`);
  assert.equal(inOriginal, 50, 'the accepted mail is in the original spool');
  assert.equal(listed.messages.length, 50, '`queue list` shows it');
  host.behaviour = 'accept';
  host.dropAll();
  await everyAcceptedDelivered(ctx, host, outcomes);
  stillUp(relay);
  ctx.row.does = 'keeps `queue.dir` at its running value through the failed reload and its fallback; mail stays in the original spool';
  ctx.row.sees = describeReplies(outcomes);
}
