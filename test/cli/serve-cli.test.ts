// `dkim-relay serve` as a child process: its greeting, SIGHUP reloads, and
// signals while a session is in flight, through the real CLI and real signals.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { rawSession, type RawSession } from '../helpers/raw-smtp.ts';
import { queuedIds } from '../helpers/queued.ts';
import { selfSignedCert, startSink, type SinkBehaviour } from '../helpers/relay-harness.ts';
import { tempDir } from '../helpers/tmp.ts';
import { BIN, CLI_TIMEOUT_MS, dkimRelay, NODE, serve, type Served } from './support.ts';

/** None of these tests is about the rotation scheduler: it stays off, so no pass ever asks DNS. */
const ROTATION_OFF = 'rotation: {check: "off"}\n';

/** A folder with a configuration file `relay.yaml` written from `yaml` (its keys and outbox inside the folder). */
function setup(yaml = ''): { dir: string; config: string; write(yaml: string): void } {
  const dir = tempDir();
  const config = join(dir, 'relay.yaml');
  const write = (more: string) =>
    writeFileSync(
      config,
      `keys: {dir: ${join(dir, 'keys')}}\nmetrics: {listen: "127.0.0.1:0"}\ndelivery: {mode: sync, upstream: {type: file, dir: ${join(dir, 'outbox')}}}\n${ROTATION_OFF}${more}`,
    );
  write(yaml);
  return { dir, config, write };
}

const MESSAGE = 'From: a@example.com\r\nTo: b@example.net\r\nSubject: in flight\r\n\r\nstill delivered\r\n.\r\n';

/** A session left mid-DATA: greeting, EHLO, MAIL, RCPT and DATA answered. */
async function midData(port: number): Promise<RawSession> {
  const session = await rawSession(port);
  assert.match((await session.reply(1)) ?? '', /^220 /);
  session.write('EHLO client.test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n');
  assert.match((await session.reply(5)) ?? '', /^354 /, session.replies.join('\n'));
  return session;
}

async function relayOne(port: number): Promise<string> {
  const session = await midData(port);
  session.write(MESSAGE);
  const reply = (await session.reply(6)) ?? '(none)';
  session.write('QUIT\r\n');
  await session.closed;
  return reply;
}

const outboxCount = (dir: string) => readdirSync(join(dir, 'outbox')).filter((f) => f.endsWith('.eml')).length;

/** SIGHUP, and waits for `expect` on the output after it; returns where that output began. */
async function sighup(relay: Served, expect = 'configuration reloaded'): Promise<number> {
  const mark = relay.output().length;
  relay.child.kill('SIGHUP');
  await relay.waitFor(expect, 20_000, mark);
  return mark;
}

async function stopped(relay: Served): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no exit:\n${relay.output()}`)), 40_000).unref());
  return Promise.race([relay.exited, timeout]);
}

test('the greeting says ESMTP once', async () => {
  const { dir, config } = setup('listen: {port: 0, hostname: relay.test}\n');
  const relay = await serve(['--config', config], dir);
  try {
    const session = await rawSession(relay.port());
    assert.equal(await session.reply(1), '220 relay.test ESMTP dkim-relay');
    session.write('QUIT\r\n');
    await session.closed;
  } finally {
    relay.kill();
  }
});

test('a TSIG secret file others can read stops the start with one line, exit 2', async () => {
  const { dir, config, write } = setup();
  const secret = join(dir, 'tsig.key');
  writeFileSync(secret, Buffer.alloc(32, 1).toString('base64'), { mode: 0o644 });
  write(`listen: {port: 0}\ndns:\n  publish:\n    - {zone: example.com, method: rfc2136, server: "127.0.0.1:1", tsig: {name: k, secretFile: ${secret}}}\n`);
  const run = await dkimRelay(['serve', '--config', config], dir);
  assert.equal(run.code, 2, run.stderr);
  const lines = run.stderr.trim().split('\n');
  assert.equal(lines.length, 1, run.stderr);
  assert.match(lines[0]!, /TSIG secret file .* is readable by others \(mode 0644\).*chmod 600/);
  assert.doesNotMatch(run.stdout, /relay listening/, 'nothing listened');
});

test('a listen.host that is no address of this machine stops the start with one line, exit 2 (not a stack trace)', async () => {
  const { dir, config, write } = setup();
  write('listen: {host: 192.0.2.1, port: 0}\n'); // TEST-NET-1 (RFC 5737): on no interface here
  const run = await dkimRelay(['serve', '--config', config], dir);
  assert.equal(run.code, 2, run.stderr);
  const lines = run.stderr.trim().split('\n');
  assert.equal(lines.length, 1, run.stderr);
  assert.match(lines[0]!, /^dkim-relay: listen\.host 192\.0\.2\.1: no such address on this machine — set one of its addresses/);
  assert.doesNotMatch(run.stdout, /relay listening/, 'nothing listened');
});

test('serve runs in the process of bin/dkim-relay.js with the memory settings, and values an operator gives win', async () => {
  const { dir, config } = setup('listen: {port: 0, hostname: relay.test}\n');
  const settings = (pid: number) => ({
    argv: readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      .split('\0')
      .filter((a) => a.startsWith('--max-')),
    arenas: readFileSync(`/proc/${pid}/environ`, 'utf8')
      .split('\0')
      .find((v) => v.startsWith('MALLOC_ARENA_MAX=')),
  });
  const relay = await serve(['--config', config], dir);
  try {
    assert.deepEqual(settings(relay.child.pid!), { argv: ['--max-semi-space-size=4', '--max-old-space-size=1536'], arenas: 'MALLOC_ARENA_MAX=2' });
  } finally {
    relay.kill();
    await relay.exited; // its lock on the spool goes with the process
  }
  const own = await serve(['--config', config], dir, { env: { NODE_OPTIONS: '--max-old-space-size=2048', MALLOC_ARENA_MAX: '4' } });
  try {
    assert.deepEqual(settings(own.child.pid!), { argv: ['--max-semi-space-size=4'], arenas: 'MALLOC_ARENA_MAX=4' });
  } finally {
    own.kill();
  }
});

test("the stripped TypeScript is kept in systemd's CacheDirectory (or node_modules/.cache), never in a shared folder", async () => {
  const cache = tempDir('dkim-relay-cachedir-');
  const run = (env: NodeJS.ProcessEnv) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(
        NODE,
        [BIN, '--version'],
        { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, encoding: 'utf8', timeout: CLI_TIMEOUT_MS },
        (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
      );
    });
  const first = await run({ CACHE_DIRECTORY: cache });
  assert.equal(first.code, 0, first.stderr);
  const versions = readdirSync(join(cache, 'compile'));
  assert.equal(versions.length, 1, 'one folder for this Node.js version');
  assert.ok(readdirSync(join(cache, 'compile', versions[0]!)).length > 10, 'the modules the CLI loaded are in the cache');
  assert.equal(statSync(join(cache, 'compile')).mode & 0o077, 0, 'only the service user may write code there');
  // An operator's NODE_COMPILE_CACHE wins.
  const own = tempDir('dkim-relay-owncache-');
  assert.equal((await run({ CACHE_DIRECTORY: cache, NODE_COMPILE_CACHE: own })).code, 0);
  assert.ok(readdirSync(own).length > 0);
});

describe('SIGHUP', () => {
  test('applies log.level, raised and lowered', async () => {
    const { dir, config, write } = setup('listen: {port: 0}\nlog: {level: info}\n');
    const relay = await serve(['--config', config], dir);
    try {
      const port = relay.port();
      write(`listen: {port: ${port}}\nlog: {level: debug}\n`);
      let mark = await sighup(relay);
      mark = relay.output().length;
      assert.match(await relayOne(port), /^250 /);
      await relay.waitFor('"msg":"message"', 10_000, mark);
      assert.match(relay.output().slice(mark), /"level":"debug",.*"msg":"connect"/, 'debug lines after the reload to debug');

      write(`listen: {port: ${port}}\nlog: {level: info}\n`);
      mark = await sighup(relay);
      mark = relay.output().length;
      assert.match(await relayOne(port), /^250 /);
      await relay.waitFor('"msg":"message"', 10_000, mark);
      assert.doesNotMatch(relay.output().slice(mark), /"msg":"connect"/, 'no debug lines after the reload to info');

      relay.child.kill('SIGTERM');
      assert.equal((await stopped(relay)).code, 0);
    } finally {
      relay.kill();
    }
  });

  test('a session open across a reload goes on under the old configuration; a new one gets the new', async () => {
    const { dir, config, write } = setup('listen: {port: 0, hostname: old.test}\n');
    const relay = await serve(['--config', config], dir);
    try {
      const port = relay.port();
      const session = await midData(port);
      session.write(MESSAGE);
      assert.match((await session.reply(6)) ?? '', /^250 /);

      write(`listen: {port: ${port}, hostname: new.test}\n`);
      const mark = await sighup(relay);
      const fresh = await rawSession(port);
      assert.match((await fresh.reply(1)) ?? '', /^220 new\.test /, 'a new connection is greeted by the new configuration');
      fresh.write('QUIT\r\n');
      await fresh.closed;

      // The client of the old session sends another message, as Exchange does on a cached connection: not told 421.
      session.write('MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n');
      assert.match((await session.reply(9)) ?? '', /^354 /, session.replies.join('\n'));
      session.write(MESSAGE);
      assert.match((await session.reply(10)) ?? '', /^250 /, session.replies.join('\n'));
      session.write('QUIT\r\n');
      await session.closed;
      assert.equal(outboxCount(dir), 2);
      await relay.waitFor('"retired: ', 20_000, mark); // the replaced relay, once its last session ended
      assert.doesNotMatch(relay.output().slice(mark), /"msg":"stopped"/, 'the process runs on: nothing says it stopped');

      relay.child.kill('SIGTERM');
      assert.equal((await stopped(relay)).code, 0);
    } finally {
      relay.kill();
    }
  });

  test('a stop after a reload tells the sessions the old relay let finish 421 at their next command, and exits', async () => {
    const { dir, config, write } = setup('listen: {port: 0}\n');
    const relay = await serve(['--config', config], dir);
    try {
      const port = relay.port();
      const session = await rawSession(port);
      assert.match((await session.reply(1)) ?? '', /^220 /);
      session.write('EHLO client.test\r\n');
      assert.match((await session.reply(2)) ?? '', /^250[ -]/);

      write(`listen: {port: ${port}}\n`);
      const mark = await sighup(relay);
      relay.child.kill('SIGTERM');
      await relay.waitFor('"stopped"', 20_000, mark); // the new relay, which had no session
      session.write('NOOP\r\n');
      assert.match((await session.reply(3)) ?? '', /^421 /, session.replies.join('\n'));
      await session.closed;
      assert.equal((await stopped(relay)).code, 0, relay.output());
    } finally {
      relay.kill();
    }
  });

  test('queue.dir cannot change live: the reload says a restart is needed, and mail is queued and delivered from the old spool', async () => {
    const dir = tempDir();
    const config = join(dir, 'relay.yaml');
    const oldSpool = join(dir, 'spool-old');
    const newSpool = join(dir, 'spool-new');
    // The upstream holds wait@ back (451), so a message stays in the spool long enough to be seen there.
    const behaviour: SinkBehaviour = { rcpt: { 'wait@example.net': { code: 451, text: '4.2.0 try again later' } } };
    const sink = await startSink(behaviour);
    const write = (port: number, spool: string) =>
      writeFileSync(
        config,
        `keys: {dir: ${join(dir, 'keys')}}\nmetrics: {listen: "127.0.0.1:0"}\n${ROTATION_OFF}listen: {port: ${port}}\n` +
          `delivery: {mode: queue, upstream: {type: smtp, host: 127.0.0.1, port: ${sink.port}}}\n` +
          `queue: {dir: ${spool}, retryAfter: 1s, maxRetryInterval: 1s}\n`,
      );
    write(0, oldSpool);
    const relay = await serve(['--config', config], dir);
    const queued = (spool: string) => queuedIds(spool);
    const queueOne = async (port: number, to: string): Promise<string> => {
      const session = await rawSession(port);
      assert.match((await session.reply(1)) ?? '', /^220 /);
      session.write(`EHLO client.test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<${to}>\r\nDATA\r\n`);
      assert.match((await session.reply(5)) ?? '', /^354 /, session.replies.join('\n'));
      session.write(MESSAGE);
      const reply = (await session.reply(6)) ?? '(none)';
      session.write('QUIT\r\n');
      await session.closed;
      const id = /^250 2\.0\.0 Ok: queued as (\S+)$/.exec(reply)?.[1];
      assert.ok(id, reply);
      return id;
    };
    try {
      const port = relay.port();
      const before = await queueOne(port, 'wait@example.net');
      assert.deepEqual(queued(oldSpool), [before]);

      write(port, newSpool);
      const mark = await sighup(relay);
      const warning = relay
        .output()
        .slice(mark)
        .split('\n')
        .find((l) => l.includes('take effect only at a restart'));
      assert.ok(warning, relay.output().slice(mark));
      assert.deepEqual((JSON.parse(warning) as { kept: string[] }).kept, [`queue.dir (${oldSpool})`]);

      // After the reload: queued in the old spool, next to the message from before it.
      const after = await queueOne(port, 'wait@example.net');
      assert.deepEqual(queued(oldSpool), [before, after].sort());
      await queueOne(port, 'now@example.net');
      for (let i = 0; i < 200 && !sink.received.some((r) => r.to.includes('now@example.net')); i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(
        sink.received.some((r) => r.to.includes('now@example.net')),
        'delivered after the reload',
      );

      behaviour.rcpt = {};
      for (let i = 0; i < 300 && queued(oldSpool).length > 0; i++) await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(queued(oldSpool), [], 'both held messages delivered from the old spool');
      assert.equal(sink.received.filter((r) => r.to.includes('wait@example.net')).length, 2);
      assert.equal(existsSync(newSpool), false, 'the new spool directory was never made');

      relay.child.kill('SIGTERM');
      assert.equal((await stopped(relay)).code, 0, relay.output());
    } finally {
      relay.kill();
      await sink.close();
    }
  });

  test('a failed reload after a kept queue.dir change restarts what runs: mail stays in the original spool', async () => {
    const dir = tempDir();
    const config = join(dir, 'relay.yaml');
    const spool = join(dir, 'spool');
    const spool2 = join(dir, 'spool2');
    // The upstream holds wait@ back (451), so the message stays where the relay queued it.
    const sink = await startSink({ rcpt: { 'wait@example.net': { code: 451, text: '4.2.0 try again later' } } });
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const write = (port: number, queueDir: string) =>
      writeFileSync(
        config,
        `keys: {dir: ${join(dir, 'keys')}}\nmetrics: {listen: "127.0.0.1:0"}\n${ROTATION_OFF}listen: {port: ${port}}\n` +
          `delivery: {mode: queue, upstream: {type: smtp, host: 127.0.0.1, port: ${sink.port}}}\n` +
          `queue: {dir: ${queueDir}, retryAfter: 1h}\n`,
      );
    write(0, spool);
    const relay = await serve(['--config', config], dir);
    const reload = async (expect: string): Promise<string> => {
      const mark = await sighup(relay, expect);
      await relay.waitFor('"relay listening"', 20_000, mark);
      return relay.output().slice(mark);
    };
    try {
      const port = relay.port();
      const busy = (taken.address() as AddressInfo).port;
      write(port, spool2);
      const kept = (await reload('configuration reloaded')).split('\n').find((l) => l.includes('take effect only at a restart'));
      assert.ok(kept, relay.output());
      assert.deepEqual((JSON.parse(kept) as { kept: string[] }).kept, [`queue.dir (${spool})`]);

      write(busy, spool2);
      await reload('reload failed: restarting with the previous configuration');
      write(port, spool);
      const third = await reload('configuration reloaded');
      assert.doesNotMatch(third, /take effect only at a restart/, 'the restored file asks for what runs: nothing is kept');

      const session = await rawSession(relay.port());
      assert.match((await session.reply(1)) ?? '', /^220 /);
      session.write(`EHLO client.test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<wait@example.net>\r\nDATA\r\n`);
      assert.match((await session.reply(5)) ?? '', /^354 /, session.replies.join('\n'));
      session.write(MESSAGE);
      const reply = (await session.reply(6)) ?? '(none)';
      session.write('QUIT\r\n');
      await session.closed;
      const id = /^250 2\.0\.0 Ok: queued as (\S+)$/.exec(reply)?.[1];
      assert.ok(id, reply);
      assert.deepEqual(queuedIds(spool), [id], `queued in ${spool}`);
      assert.equal(existsSync(spool2), false, 'spool2 was never created');
      const listed = await dkimRelay(['queue', 'list', '--config', config], dir);
      assert.equal(listed.code, 0, listed.stderr);
      assert.match(listed.stdout, new RegExp(id), '`queue list` reads the spool the relay writes');

      relay.child.kill('SIGTERM');
      assert.equal((await stopped(relay)).code, 0, relay.output());
    } finally {
      relay.kill();
      taken.close();
      await sink.close();
    }
  });

  test('a reload that took the SMTP port over and then failed (its TLS port in use) hands the port back, and what ran starts again', async () => {
    const { dir, config, write } = setup();
    mkdirSync(join(dir, 'tls'));
    const tls = selfSignedCert(join(dir, 'tls'));
    write(`listen: {port: 0, hostname: old.test, tls: {key: ${tls.key}, cert: ${tls.cert}}}\n`);
    const relay = await serve(['--config', config], dir);
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const port = relay.port();
      const busy = (taken.address() as AddressInfo).port;
      // What runs names its port (the fallback restarts what runs, and a port 0 would be a new one).
      write(`listen: {port: ${port}, hostname: old.test, tls: {key: ${tls.key}, cert: ${tls.cert}}}\n`);
      let mark = await sighup(relay);
      const session = await rawSession(port); // open across the reload, on the old relay
      assert.match((await session.reply(1)) ?? '', /^220 old\.test /);
      write(`listen: {port: ${port}, hostname: new.test, tlsPort: ${busy}, tls: {key: ${tls.key}, cert: ${tls.cert}}}\n`);
      mark = await sighup(relay, 'reload failed: restarting with the previous configuration');
      await relay.waitFor('"relay listening"', 20_000, mark);
      assert.match(relay.output().slice(mark), new RegExp(`127\\.0\\.0\\.1:${busy} is already in use`));
      const fresh = await rawSession(port);
      assert.match((await fresh.reply(1)) ?? '', /^220 old\.test /, 'the previous configuration answers on the same port');
      fresh.write('QUIT\r\n');
      await fresh.closed;
      session.write('EHLO client.test\r\n');
      assert.match((await session.reply(2)) ?? '', /^250[ -]/, 'the session open across the failed reload goes on');
      session.write('QUIT\r\n');
      await session.closed;
      relay.child.kill('SIGTERM');
      assert.equal((await stopped(relay)).code, 0, relay.output());
    } finally {
      relay.kill();
      taken.close();
    }
  });

  test('a reload whose fallback fails too exits 2 with one line, no unhandled rejection', async () => {
    const { dir, config, write } = setup();
    mkdirSync(join(dir, 'tls'));
    const tls = selfSignedCert(join(dir, 'tls'));
    write(`listen: {port: 0, tls: {key: ${tls.key}, cert: ${tls.cert}}}\n`);
    const relay = await serve(['--config', config], dir);
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const busy = (taken.address() as AddressInfo).port;
      // The new configuration cannot start (its port is taken), and the previous one
      // cannot start again either (its certificate went away meanwhile).
      write(`listen: {port: ${busy}}\n`);
      rmSync(tls.cert);
      relay.child.kill('SIGHUP');
      const { code } = await stopped(relay);
      assert.equal(code, 2, relay.output());
      const stderrLines = relay
        .output()
        .split('\n')
        .filter((l) => l.startsWith('dkim-relay: '));
      assert.equal(stderrLines.length, 1, relay.output());
      assert.match(
        stderrLines[0]!,
        new RegExp(
          `reload failed \\(127\\.0\\.0\\.1:${busy} is already in use\\) and the previous configuration could not start again \\(listen\\.tls\\.cert: .*tls\\.crt does not exist\\) — `,
        ),
      );
      assert.match(relay.output(), /"level":"fatal",.*reload failed and the previous configuration could not start again/);
      assert.doesNotMatch(relay.output(), /^\s+at |Unhandled|unexpected error/m);
    } finally {
      relay.kill();
      taken.close();
    }
  });
});

describe('SIGTERM and SIGINT while a session is in flight', () => {
  test('a second signal is logged and the session still completes with 250', async () => {
    const { dir, config } = setup('listen: {port: 0}\n');
    const relay = await serve(['--config', config], dir);
    try {
      const session = await midData(relay.port());
      relay.child.kill('SIGTERM');
      relay.child.kill('SIGINT');
      await relay.waitFor('already stopping');
      session.write(MESSAGE);
      assert.match((await session.reply(6)) ?? '(none)', /^250 2\.0\.0 Ok: written to/);
      session.write('QUIT\r\n');
      assert.equal((await stopped(relay)).code, 0, relay.output());
      assert.equal(outboxCount(dir), 1);
    } finally {
      relay.kill();
    }
  });

  test('a third signal stops at once (exit 128 + signal number)', async () => {
    const { dir, config } = setup('listen: {port: 0}\n');
    const relay = await serve(['--config', config], dir);
    try {
      const session = await midData(relay.port());
      // One at a time: the kernel merges a signal into one still pending.
      relay.child.kill('SIGTERM');
      await relay.waitFor('signal received');
      relay.child.kill('SIGTERM');
      await relay.waitFor('already stopping');
      relay.child.kill('SIGTERM');
      assert.equal((await stopped(relay)).code, 143, relay.output());
      assert.match(relay.output(), /stopping at once: sessions in flight are cut off/);
      await session.closed;
      assert.equal(session.replies.length, 5, 'the cut-off session got no reply to its DATA');
    } finally {
      relay.kill();
    }
  });

  // The system's node, not the project's Node 24 that `npm test` puts first on PATH.
  const systemNode = (process.env.PATH ?? '')
    .split(':')
    .filter((d) => d && !d.includes('node_modules'))
    .map((d) => join(d, 'node'))
    .find((p) => existsSync(p));
  const version = systemNode ? execFileSync(systemNode, ['--version'], { encoding: 'utf8' }).trim() : 'none';
  test(
    `Ctrl-C through bin/dkim-relay.js on the system's node ${version}: SIGINT to it and to the wrapper, which passes its copy on`,
    { skip: !(Number(version.slice(1).split('.')[0]) < 24) && 'no older node on PATH: bin/dkim-relay.js runs no child' },
    async () => {
      const { dir, config } = setup('listen: {port: 0}\n');
      const relay = await serve(['--config', config], dir, { node: systemNode!, detached: true });
      try {
        const session = await midData(relay.port());
        // As a terminal does, the relay and the wrapper each get one, and the wrapper passes its copy on. Sent one
        // after the other rather than to the group at once, so the kernel cannot merge the two copies: the relay
        // takes exactly two, and after its "already stopping" line no copy is still on its way.
        const wrapper = relay.child.pid!;
        const relayPid = Number(readFileSync(`/proc/${wrapper}/task/${wrapper}/children`, 'utf8').trim().split(/\s+/)[0]);
        process.kill(relayPid, 'SIGINT');
        await relay.waitFor('signal received');
        process.kill(wrapper, 'SIGINT');
        await relay.waitFor('already stopping');
        session.write(MESSAGE);
        assert.match((await session.reply(6)) ?? '(none)', /^250 2\.0\.0 Ok: written to/);
        session.write('QUIT\r\n');
        assert.equal((await stopped(relay)).code, 0, relay.output());
        assert.equal(outboxCount(dir), 1);
      } finally {
        relay.kill();
      }
    },
  );
});
