// The background tasks of a running relay fail without stopping it: each
// failure is logged once per cause with the task's name, counted in
// dkim_relay_background_failures_total{task}, shown by `dkim-relay status`
// (another process) and on the status page, and the task runs again at its
// next time. An exception outside every task ends `serve` with one fatal line.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/load.ts';
import { SqliteKeyStore } from '../../src/keys/store.ts';
import { startRelay } from '../../src/daemon/daemon.ts';
import { metrics } from '../../src/observability/metrics.ts';
import { Supervisor } from '../../src/common/supervisor.ts';
import type { DnsObserver } from '../../src/rotation/dns-observer.ts';
import { dkimRelay, serve } from '../cli/support.ts';
import { startDnsServer } from '../helpers/dns-server.ts';
import { rawSession } from '../helpers/raw-smtp.ts';
import { tempDir } from '../helpers/tmp.ts';
import { get, parseExposition, value } from '../observability/support.ts';

type Line = Record<string, unknown>;

async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  for (const end = Date.now() + ms; !(await ok());) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function greets(port: number): Promise<boolean> {
  const session = await rawSession(port);
  const greeting = await session.reply(1);
  session.write('QUIT\r\n');
  await session.closed;
  return /^220 /.test(greeting ?? '');
}

test('failing background tasks: the relay carries on, logs each cause once, counts, shows them, and runs them again', async () => {
  const dir = tempDir();
  const dns = await startDnsServer(
    new Map([
      ['_dmarc.example.com', [['v=DMARC1; p=reject']]],
      ['example.com', [['v=spf1 -all']]],
    ]),
  );
  const file = join(dir, 'relay.yaml');
  const queueDir = join(dir, 'spool');
  writeFileSync(
    file,
    `keys: {dir: ${join(dir, 'keys')}}\nqueue: {dir: ${queueDir}}\nlisten: {port: 0}\nmetrics: {listen: "127.0.0.1:0"}\n` +
      `delivery: {mode: sync, upstream: {type: file, dir: ${join(dir, 'outbox')}}}\n` +
      // Every second: the rotation pass, its DNS observation and the DMARC readiness lookup.
      `rotation: {check: "* * * * * *"}\ndns: {resolvers: ["${dns.address}"], timeoutSeconds: 1}\n`,
  );
  const seed = SqliteKeyStore.open(join(dir, 'keys'));
  seed.generate({ domain: 'example.com', algorithm: 'ed25519', activate: true });
  seed.close();

  const lines: Line[] = [];
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk, _e, done) {
        lines.push(JSON.parse(String(chunk)) as Line);
        done();
      },
    }),
  );
  let dnsBroken = false;
  const observer = (): DnsObserver => ({
    servers: async () => {
      if (dnsBroken) throw new Error('resolver exploded');
      return [dns.address];
    },
    check: async () => ({ state: 'match', detail: 'served' }),
  });
  const supervisor = new Supervisor({ logger, dir: queueDir, metrics });
  const relay = await startRelay(loadConfig(file), logger, { supervisor, rotation: { observer: () => observer() } });
  const metricsPort = relay.ports.metrics!;
  const failed = (task: string) => lines.filter((l) => l.task === task && l.level === 50);
  const repeats = (task: string) => supervisor.health().find((t) => t.task === task)?.repeats ?? 0;
  const counted = async (task: string) =>
    value(await parseExposition((await get(metricsPort, '/metrics')).body), 'dkim_relay_background_failures_total', { task });
  try {
    // DNS observation fails at every pass; the pass itself goes on.
    dnsBroken = true;
    await until('three failed observations', () => repeats('dns-observation') >= 3);
    assert.equal(failed('dns-observation').length, 1, JSON.stringify(failed('dns-observation')));
    assert.equal(failed('dns-observation')[0]!.err, 'example.com: resolver exploded');
    assert.equal(failed('rotation').length, 0, 'the pass carried on');
    const page = (await get(metricsPort, '/')).body;
    assert.match(
      page,
      /<li data-task="dns-observation" data-state="failing" class="attention">dns-observation failing since [^<]*, \d+ times: example\.com: resolver exploded<\/li>/,
    );
    assert.ok((await counted('dns-observation'))! >= 3);

    // The key store fails: the rotation pass, the readiness lookup and the metrics collection with it.
    const list = relay.store.list.bind(relay.store);
    relay.store.list = () => {
      throw new Error('disk I/O error');
    };
    await until('three failed passes and lookups', () => repeats('rotation') >= 3 && repeats('dmarc-readiness') >= 3);
    const scrape = await get(metricsPort, '/metrics');
    assert.equal(scrape.status, 200, 'a scrape still answers, without the key gauges');
    assert.match(scrape.body, /^dkim_relay_messages_received_total 0$/m);
    assert.ok((await counted('metrics'))! >= 1);
    for (const task of ['rotation', 'dmarc-readiness', 'metrics']) {
      assert.equal(failed(task).length, 1, `${task}: one line for one cause: ${JSON.stringify(failed(task))}`);
      assert.equal(failed(task)[0]!.err, 'disk I/O error');
      assert.equal(failed(task)[0]!.msg, `background task ${task} failed; it runs again at its next time`);
    }
    assert.ok((await counted('rotation'))! >= 3);
    assert.equal(await counted('extension-probe'), 0, 'every task has its series');
    assert.ok(await greets(relay.ports.plain), 'the relay still takes connections');

    // `dkim-relay status`, another process, reads what the relay recorded.
    const status = await dkimRelay(['status', '--no-dns', '--config', file], dir);
    assert.equal(status.code, 1, status.stdout + status.stderr);
    assert.match(status.stdout, /^! rotation failing since .*, \d+ times: disk I\/O error$/m);
    assert.match(status.stdout, /^! dns-observation failing since .*: example\.com: resolver exploded$/m);
    assert.match(status.stderr, /need a person: .*background task rotation/);
    const json = JSON.parse((await dkimRelay(['status', '--no-dns', '--json', '--config', file], dir)).stdout) as {
      ok: boolean;
      background: { task: string; state: string }[];
    };
    assert.equal(json.ok, false);
    assert.deepEqual(
      json.background.map((t) => t.task),
      ['rotation', 'dns-observation', 'dmarc-readiness', 'metrics'],
    );

    // Mended: each task's next run works, and says so once.
    relay.store.list = list;
    dnsBroken = false;
    // Generous: on a loaded machine the one-second passes run late; the health in the error says which task did not recover.
    await until(
      'the timed tasks work again',
      () => ['rotation', 'dns-observation', 'dmarc-readiness'].every((task) => supervisor.health().find((t) => t.task === task)?.state === 'recovered'),
      90_000,
    );
    // The metrics collection runs at a scrape, and only then.
    assert.equal((await get(metricsPort, '/metrics')).status, 200);
    await until(`every task works again`, () => supervisor.health().every((t) => t.state === 'recovered'), 90_000).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(supervisor.health())}`);
    });
    for (const task of ['rotation', 'dns-observation', 'dmarc-readiness']) {
      assert.equal(lines.filter((l) => l.task === task && l.msg === `background task ${task} works again`).length, 1, task);
    }
    await get(metricsPort, '/metrics');
    await until('metrics works again', () => lines.some((l) => l.msg === 'background task metrics works again'));
    assert.match((await get(metricsPort, '/')).body, /data-task="rotation" data-state="recovered">rotation works again since/);
    const after = await dkimRelay(['status', '--no-dns', '--config', file], dir);
    assert.equal(after.code, 0, after.stdout + after.stderr);
    assert.match(after.stdout, /^ {2}rotation works again since .*; it had failed \d+ times: disk I\/O error$/m);
  } finally {
    await relay.stop();
    await dns.close();
  }
});

test('queue maintenance and the extension probe fail without stopping the relay, once per cause, and run again', async () => {
  const dir = tempDir();
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const deadPort = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const file = join(dir, 'relay.yaml');
  writeFileSync(
    file,
    `keys: {dir: ${join(dir, 'keys')}}\nqueue: {dir: ${join(dir, 'spool')}}\nlisten: {port: 0}\nmetrics: {listen: "127.0.0.1:0"}\nrotation: {check: "off"}\n` +
      // Nothing listens there: the probe of its extensions fails.
      `delivery: {mode: queue, upstream: {type: smtp, host: 127.0.0.1, port: ${deadPort}, timeoutSeconds: 2}}\n`,
  );
  const lines: Line[] = [];
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk, _e, done) {
        lines.push(JSON.parse(String(chunk)) as Line);
        done();
      },
    }),
  );
  const supervisor = new Supervisor({ logger, metrics });
  const relay = await startRelay(loadConfig(file), logger, { supervisor });
  const counted = async (task: string) =>
    value(await parseExposition((await get(relay.ports.metrics!, '/metrics')).body), 'dkim_relay_background_failures_total', { task });
  try {
    await until('the probe failed', () => supervisor.health().some((t) => t.task === 'extension-probe'));
    const probe = lines.filter((l) => l.task === 'extension-probe');
    assert.equal(probe.length, 1, JSON.stringify(probe));
    assert.match(
      String(probe[0]!.err),
      new RegExp(`^could not learn the extensions of smtp 127\\.0\\.0\\.1:${deadPort} \\(.*\\); assuming 7-bit and no SMTPUTF8 until it answers$`),
    );
    assert.ok((await counted('extension-probe'))! >= 1);

    // The queue's database fails under the manager's loop: it looks again shortly, and says so once.
    const { index, manager } = relay.queue!;
    const claimDue = index.claimDue.bind(index);
    let looks = 0;
    index.claimDue = () => {
      looks++;
      throw Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR' });
    };
    for (let i = 0; i < 5; i++) {
      manager.wake();
      await until(`look ${i + 1}`, () => looks > i);
    }
    const maintenance = lines.filter((l) => l.task === 'queue-maintenance');
    assert.equal(maintenance.length, 1, JSON.stringify(maintenance));
    assert.equal(maintenance[0]!.err, 'disk I/O error');
    assert.ok((await counted('queue-maintenance'))! >= 5);
    assert.ok(await greets(relay.ports.plain), 'the relay still takes connections');

    index.claimDue = claimDue;
    manager.wake();
    await until('the loop works again', () => lines.some((l) => l.msg === 'background task queue-maintenance works again'));
  } finally {
    await relay.stop();
  }
});

test('an exception no task caught ends serve: one fatal line, exit 70', async () => {
  const dir = tempDir();
  // Loaded before the CLI: on SIGUSR2, a throw outside every task (or a rejection nobody handles).
  const hook = join(dir, 'bug.mjs');
  writeFileSync(
    hook,
    `process.on('SIGUSR2', () => { if (process.env.BUG === 'rejection') Promise.reject(new Error('a promise nobody awaited')); else throw new TypeError('a bug outside every task'); });\n`,
  );
  const config = join(dir, 'relay.yaml');
  writeFileSync(
    config,
    `keys: {dir: ${join(dir, 'keys')}}\nqueue: {dir: ${join(dir, 'spool')}}\nmetrics: {enabled: false}\nrotation: {check: "off"}\nlisten: {port: 0}\ndelivery: {mode: sync, upstream: {type: file, dir: ${join(dir, 'outbox')}}}\n`,
  );
  for (const [bug, what, message] of [
    ['exception', 'exception', 'a bug outside every task'],
    ['rejection', 'rejection', 'a promise nobody awaited'],
  ] as const) {
    const relay = await serve(['--config', config], dir, { env: { NODE_OPTIONS: `--import ${hook}`, BUG: bug } });
    try {
      const mark = relay.output().length;
      relay.child.kill('SIGUSR2');
      const { code } = await relay.exited;
      assert.equal(code, 70, relay.output());
      const after = relay.output().slice(mark).trim().split('\n');
      assert.equal(after.length, 1, `one line: ${relay.output().slice(mark)}`);
      const line = JSON.parse(after[0]!) as Line;
      assert.equal(line.level, 'fatal');
      assert.equal(line.msg, `unexpected ${what}: stopping (a bug; please report it)`);
      assert.equal(line.err, message);
      assert.match(String(line.stack), /bug\.mjs/, 'the stack is in the line, for the bug report');
    } finally {
      relay.kill();
    }
  }
});
