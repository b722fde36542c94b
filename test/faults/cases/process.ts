// Faults of the process itself: a second `serve` on the same spool, SIGKILL
// in the middle of a reload, a reload whose fallback must not move the
// relay to settings it never applied, reloads that must never leave the
// port free, and a process out of file descriptors.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { BIN, NODE } from '../../cli/support.ts';
import { runLoad, type Outcome } from '../support/load.ts';
import { describeReplies, everyAcceptedDelivered, logLines, relayAndHost, stillUp, type CaseContext } from '../support/kit.ts';
import { cli, COMPILE_CACHE, eventually, ports, startRelay, writeConfig } from '../support/relay.ts';
import { connect, type Socket } from 'node:net';
import { startSmartHost } from '../support/smart-host.ts';
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

/** Binds `port` on 127.0.0.1 again and again (at most `limit` times) until `done()`: how often it was free. */
async function tryToTake(port: number, done: () => boolean, limit: number): Promise<{ tries: number; taken: number }> {
  let tries = 0;
  let taken = 0;
  for (; tries < limit && !done(); tries++) {
    const server = createServer();
    const bound = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (bound) {
      taken++;
      await new Promise((resolve) => server.close(resolve));
    }
    // A refused listen() reports on the next tick: without a turn of the event loop, nothing else in this process would run.
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { tries, taken };
}

export async function reloadsUnderLoad(ctx: CaseContext): Promise<void> {
  const { relay, host, config } = await relayAndHost(ctx);
  const { plain } = ports(relay);
  writeConfig(config, { dir: ctx.dir, upstreamPort: host.port, extra: { listen: `{host: 127.0.0.1, port: ${plain}, hostname: relay.test}` } });
  const RELOADS = 5;
  let reloaded = 0;
  const done = () => reloaded === RELOADS;
  // Meanwhile: clients that connect one after another, another process after the port, and mail.
  const greetings = (async () => {
    const seen = { greeted: 0, refused: 0 };
    for (let i = 0; i < 5000 && !done(); i++) (await greets(plain)) ? seen.greeted++ : seen.refused++;
    return seen;
  })();
  const thief = tryToTake(plain, done, 200_000);
  let replies = 0;
  let onReply = () => {};
  const load = runLoad({ port: plain, tag: 'reloads', ...LOAD, count: 100, onReply: (n) => ((replies = n), onReply()) });
  const repliesReach = (n: number) => new Promise<void>((resolve) => (onReply = () => replies >= n && resolve())).then(() => (onReply = () => {}));
  for (let i = 0; i < RELOADS; i++) {
    // A reload every ten messages: sessions the old relay had are told 421 at their next command, and come back.
    await Promise.race([repliesReach(replies + 10), load]);
    const mark = relay.output().length;
    relay.child.kill('SIGHUP');
    await relay.waitFor('configuration reloaded', 20_000, mark);
    reloaded++;
  }
  const [seen, taken, outcomes] = await Promise.all([greetings, thief, load]);
  stillUp(relay);
  assert.equal(seen.refused, 0, `${seen.refused} of ${seen.greeted + seen.refused} connections during the reloads were not greeted`);
  assert.ok(seen.greeted > 0, 'connections were made during the reloads');
  assert.ok(taken.tries > 0, 'another process tried the port during the reloads');
  assert.equal(taken.taken, 0, `another process bound port ${plain} ${taken.taken} times during the reloads`);
  assert.deepEqual(
    outcomes.filter((o) => !/^(250|421) /.test(o.reply)),
    [],
    `every message is accepted, or deferred with 421 by a relay that is stopping: ${describeReplies(outcomes)}`,
  );
  await everyAcceptedDelivered(ctx, host, outcomes);
  ctx.row.does = `the sockets pass from each relay to the next: all ${seen.greeted} connections made meanwhile greeted, none refused; the other process never got the port (${taken.tries} tries)`;
  ctx.row.sees = describeReplies(outcomes);
}

export async function outOfDescriptors(ctx: CaseContext): Promise<void> {
  // The relay's process may hold this many files and sockets; it needs about 40 at rest.
  const LIMIT = 96;
  const node = join(ctx.dir, 'node-limited');
  writeFileSync(node, `#!/bin/sh\nulimit -n ${LIMIT}\nexec ${JSON.stringify(NODE)} "$@"\n`, { mode: 0o755 });
  const host = await startSmartHost('127.0.0.1', 'accept');
  ctx.cleanup.push(() => host.close());
  const config = join(ctx.dir, 'relay.yaml');
  // The connection limits above the descriptor limit, so that the descriptors run out first.
  writeConfig(config, {
    dir: ctx.dir,
    upstreamPort: host.port,
    extra: { listen: '{host: 127.0.0.1, port: 0, hostname: relay.test, maxClients: 1000, maxClientsPerIp: 1000}' },
  });
  const relay = await startRelay(config, ctx.dir, { node });
  ctx.relays.push(relay);
  ctx.cleanup.push(() => relay.kill());
  const port = relay.port();

  // Connections held open until the relay can take no more (it closes what it cannot accept).
  const held: Socket[] = [];
  ctx.cleanup.push(() => held.forEach((s) => s.destroy()));
  let ungreeted = 0;
  for (let i = 0; i < LIMIT * 2 && ungreeted < 3; i++) {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    const greeted = await new Promise<boolean>((resolve) => {
      socket.once('data', () => resolve(true));
      socket.once('close', () => resolve(false));
      socket.setTimeout(5000, () => resolve(false));
    });
    socket.setTimeout(0);
    if (greeted) held.push(socket);
    else {
      ungreeted++;
      socket.destroy();
    }
  }
  assert.ok(ungreeted > 0 && held.length < LIMIT, `the relay greeted ${held.length} connections and turned ${ungreeted} away`);
  stillUp(relay);
  // libuv accepts and closes what it has no descriptor for, and says nothing; should even that fail, the listener logs.
  const line = logLines(relay, 'could not accept connections')[0];
  const greetedCount = held.length;
  for (const socket of held.splice(0)) socket.destroy();

  const outcomes = await runLoad({ port, tag: 'after', ...LOAD });
  assert.deepEqual(
    outcomes.filter((o) => !o.reply.startsWith('250')),
    [],
    describeReplies(outcomes),
  );
  await everyAcceptedDelivered(ctx, host, outcomes);
  stillUp(relay);
  ctx.row.does = `runs on, closing ungreeted the connections it has no descriptor for${line ? ` (logs \`${String(line.msg)}\`)` : ''}; once descriptors are free, takes mail again`;
  ctx.row.sees = `${greetedCount} connections greeted, then ${ungreeted} closed ungreeted; after: ${describeReplies(outcomes)}`;
}
