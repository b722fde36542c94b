// One spool, one owner: a second `serve` on the same queue.dir, while the
// first has mail in flight, exits 2 naming the first and changes nothing;
// after SIGKILL of the first, a new one starts at once; the `queue` commands
// work beside the running relay. Real processes, real SMTP.
import assert from 'node:assert/strict';
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { rawSession, type RawSession } from '../helpers/raw-smtp.ts';
import { tempDir } from '../helpers/tmp.ts';
import { dkimRelay, serve, type Served } from './support.ts';

/** An upstream that holds every DATA until `open()`: the relay's deliveries stay in flight, claimed in queue.db. */
async function gatedSink() {
  const received: string[] = [];
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let waiting = 0;
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    closeTimeout: 500,
    logger: false,
    onData(stream, session, callback) {
      const to = session.envelope.rcptTo.map((r) => r.address).join(',');
      stream.resume();
      stream.on('end', () => {
        waiting++;
        void gate.then(() => {
          received.push(to);
          callback(null, 'Ok');
        });
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.server.address() as { port: number }).port,
    received,
    waiting: () => waiting,
    open,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function setup(sinkPort: number) {
  const dir = tempDir();
  const config = join(dir, 'relay.yaml');
  const spool = join(dir, 'spool');
  writeFileSync(
    config,
    `keys: {dir: ${join(dir, 'keys')}}\nmetrics: {enabled: false}\nrotation: {check: "off"}\nlisten: {port: 0}\n` +
      `delivery: {mode: queue, upstream: {type: smtp, host: 127.0.0.1, port: ${sinkPort}, maxConnections: 4}}\n` +
      `queue: {dir: ${spool}, retryAfter: 1h}\n`,
  );
  return { dir, config, spool };
}

/** Every file under `dir` with its size and modification time; SQLite's shared-memory index files are read-mapped by readers, so only their size counts. */
function listing(dir: string): string[] {
  const out: string[] = [];
  const walk = (at: string) => {
    for (const name of readdirSync(at).sort()) {
      const path = join(at, name);
      const st = statSync(path);
      if (st.isDirectory()) walk(path);
      else out.push(`${relative(dir, path)} ${st.size}${name.endsWith('-shm') ? '' : ` ${st.mtimeMs}`}`);
    }
  };
  walk(dir);
  return out;
}

async function openSession(port: number, to: string): Promise<RawSession> {
  const session = await rawSession(port);
  assert.match((await session.reply(1)) ?? '', /^220 /);
  session.write(`EHLO client.test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<${to}>\r\nDATA\r\n`);
  assert.match((await session.reply(5)) ?? '', /^354 /, session.replies.join('\n'));
  return session;
}

const BODY = (n: string) => `From: a@example.com\r\nTo: ${n}\r\nSubject: ${n}\r\n\r\nbody of ${n}\r\n`;

/** Past the size that goes to an intake file while it is received. */
const PADDING = `${'x'.repeat(76)}\r\n`.repeat(3000);

const intakeSizes = (spool: string) => readdirSync(join(spool, 'tmp')).map((name) => statSync(join(spool, 'tmp', name)).size);

async function finish(session: RawSession): Promise<string> {
  session.write('.\r\n');
  const reply = (await session.reply(6)) ?? '(none)';
  session.write('QUIT\r\n');
  await session.closed;
  return reply;
}

/** Waits for `ok`; one that throws (a folder not made yet) counts as not yet. */
async function until(what: string, ok: () => boolean, ms = 20_000): Promise<void> {
  const holds = () => {
    try {
      return ok();
    } catch {
      return false;
    }
  };
  for (const end = Date.now() + ms; !holds();) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('a second serve on the same queue.dir exits 2 naming the first, and changes nothing while mail is in flight', async () => {
  const sink = await gatedSink();
  const { dir, config, spool } = setup(sink.port);
  const first = await serve(['--config', config], dir);
  try {
    const port = first.port();
    // In flight: four messages the upstream is taking (claimed, "delivering"), four still being received,
    // each past the size that goes to an intake file.
    const delivering: string[] = [];
    for (let i = 0; i < 4; i++) {
      const session = await openSession(port, `d${i}@example.net`);
      session.write(BODY(`d${i}@example.net`));
      const reply = await finish(session);
      assert.match(reply, /^250 /, reply);
      delivering.push(`d${i}@example.net`);
    }
    await until('the upstream holds four deliveries', () => sink.waiting() === 4);
    const receiving: RawSession[] = [];
    for (let i = 0; i < 4; i++) {
      const session = await openSession(port, `r${i}@example.net`);
      session.write(BODY(`r${i}@example.net`) + PADDING);
      receiving.push(session);
    }
    await until('four intake files, written as far as sent', () => intakeSizes(spool).filter((n) => n >= PADDING.length).length === 4);

    const before = listing(spool);
    const second = await dkimRelay(['serve', '--config', config], dir);
    assert.equal(second.code, 2, second.stdout + second.stderr);
    const lines = second.stderr.trim().split('\n');
    assert.equal(lines.length, 1, second.stderr);
    assert.match(lines[0]!, new RegExp(`^dkim-relay: queue\\.dir ${spool} is in use by pid ${first.child.pid} — `));
    assert.doesNotMatch(second.stdout, /relay listening|recover/, 'nothing started, nothing recovered');
    assert.deepEqual(listing(spool), before, 'the spool is as it was');

    // The `queue` commands work beside the running relay.
    const listed = await dkimRelay(['queue', 'list', '--config', config], dir);
    assert.equal(listed.code, 0, listed.stderr);
    for (const to of delivering) assert.match(listed.stdout, new RegExp(to));

    // The first relay is unharmed: the messages being received are taken, and all eight delivered once.
    for (const session of receiving) assert.match(await finish(session), /^250 /);
    sink.open();
    await until('eight deliveries', () => sink.received.length === 8);
    await until('the queue is empty', () => readdirSync(join(spool, 'msg')).length === 0);
    assert.deepEqual(sink.received.sort(), [...delivering, ...[0, 1, 2, 3].map((i) => `r${i}@example.net`)].sort());
    assert.doesNotMatch(first.output(), /ENOENT|"level":"(error|fatal)"/, first.output());
  } finally {
    first.kill();
    await sink.close();
  }
});

test('after SIGKILL of the relay that held the spool, a new one starts at once', async () => {
  const sink = await gatedSink();
  sink.open();
  const { dir, config } = setup(sink.port);
  let relay: Served = await serve(['--config', config], dir);
  try {
    relay.kill();
    await relay.exited;
    relay = await serve(['--config', config], dir);
    assert.match(relay.output(), /"relay listening"/);
    const session = await openSession(relay.port(), 'after@example.net');
    session.write(BODY('after@example.net'));
    assert.match(await finish(session), /^250 /);
    await until('delivered', () => sink.received.includes('after@example.net'));
  } finally {
    relay.kill();
    await sink.close();
  }
});

test("sync mode too: a second serve leaves the first one's intake file alone, and its client gets 250", async () => {
  const dir = tempDir();
  const config = join(dir, 'relay.yaml');
  const spool = join(dir, 'spool');
  writeFileSync(
    config,
    `keys: {dir: ${join(dir, 'keys')}}\nmetrics: {enabled: false}\nrotation: {check: "off"}\nlisten: {port: 0}\nqueue: {dir: ${spool}}\ndelivery: {mode: sync, upstream: {type: file, dir: ${join(dir, 'outbox')}}}\n`,
  );
  const first = await serve(['--config', config], dir);
  try {
    const session = await openSession(first.port(), 'big@example.net');
    session.write(BODY('big@example.net') + PADDING);
    await until('the intake file, written as far as sent', () => intakeSizes(spool).filter((n) => n >= PADDING.length).length === 1);
    const before = listing(spool);
    const second = await dkimRelay(['serve', '--config', config], dir);
    assert.equal(second.code, 2, second.stdout + second.stderr);
    assert.match(second.stderr, new RegExp(`^dkim-relay: queue\\.dir ${spool} is in use by pid ${first.child.pid} — [^\\n]+\\n$`));
    assert.deepEqual(listing(spool), before);
    assert.match(await finish(session), /^250 /);
    assert.equal(readdirSync(join(dir, 'outbox')).filter((f) => f.endsWith('.eml')).length, 1);
  } finally {
    first.kill();
  }
});
