// The daemon as a user runs it: `dkim-relay serve` with no configuration of
// one's own (what `npm start` does), a message from swaks, then SIGTERM.
// Tests never bind fixed ports: the embedded default's 127.0.0.1:2525 is
// checked through `config check`, and the daemon runs on that same default
// with only the port changed to 0 (any free one), read back from its log.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { verifyWithDkimpy } from '../helpers/independent-verify.ts';
import { queuedIds } from '../helpers/queued.ts';
import { tempDir } from '../helpers/relay-harness.ts';
import { requireTool } from '../helpers/tools.ts';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');
const NODE = join(ROOT, 'node_modules', '.bin', 'node');
const CLI = join(ROOT, 'bin', 'dkim-relay.js');

/** Resolves when `text` appears on the child's output, or rejects after `ms`. */
function waitFor(child: ChildProcess, text: string, ms: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`timed out waiting for "${text}"; output so far:\n${seen}`)), ms);
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.includes(text)) {
        clearTimeout(timer);
        resolve(seen);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`exited ${code} before "${text}":\n${seen}`)));
  });
}

/** The port of the last "relay listening" line in the daemon's output. */
function listeningPort(output: string): number {
  const lines = output.split('\n').filter((l) => l.includes('"relay listening"'));
  const port = Number(/"plain":(\d+)/.exec(lines.at(-1) ?? '')?.[1]);
  assert.ok(port > 0, `no listening port in:\n${output}`);
  return port;
}

/** `serve` on the embedded default, but on a free port: a config file that says only that. */
function serveDefault(dir: string): ChildProcess {
  writeFileSync(join(dir, 'port0.yaml'), 'demo: {domain: example.com}\nlisten: {port: 0}\nmetrics: {listen: "127.0.0.1:0"}\nrotation: {check: "off"}\n');
  return spawn(NODE, [CLI, 'serve', '--config', 'port0.yaml'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
}

test('the embedded default (npm start) listens on 127.0.0.1:2525 and delivers into outbox/ with a demo key', async () => {
  const dir = tempDir();
  try {
    const { stdout } = await run(NODE, [CLI, 'config', 'check'], { cwd: dir.path, env: { ...process.env, DKIM_RELAY_CONFIG: '' } });
    assert.match(stdout, /^# embedded default/);
    assert.match(stdout, /^listen:\n  host: 127\.0\.0\.1\n  port: 2525\n/m);
    assert.match(stdout, /^delivery:\n(?:  .*\n)*?  upstream:\n    type: file\n(?:    .*\n)*?    dir: outbox\n/m);
    assert.match(stdout, /^demo:\n  domain: example\.com\n/m);
  } finally {
    dir.remove();
  }
});

describe('dkim-relay serve on the embedded default (on a free port)', () => {
  const dir = tempDir();
  let daemon: ChildProcess;
  let startup = '';
  let output = '';
  let port = 0;

  before(async () => {
    daemon = serveDefault(dir.path);
    daemon.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    daemon.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    startup = await waitFor(daemon, '"relay listening"', 20_000);
    port = listeningPort(startup);
  });
  after(() => {
    if (daemon.exitCode === null) daemon.kill('SIGKILL');
    dir.remove();
  });

  test('creates a demo key for example.com and prints its DNS record', () => {
    assert.match(startup, /s\d{6}a\._domainkey\.example\.com\. 3600 IN TXT \( "v=DKIM1; k=rsa; "/);
    assert.doesNotMatch(startup, /PRIVATE KEY/);
  });

  test('a message from swaks lands signed in outbox/ and passes verify and dkimpy', async (t) => {
    if (!requireTool(t, 'swaks', 'dkimpy')) return;
    const swaks = await run('swaks', ['--server', `127.0.0.1:${port}`, '--from', 'a@example.com', '--to', 'b@example.net', '--h-Subject', 'hello from swaks'], {
      timeout: 20_000,
    });
    // Queue mode, the default: 250 once it is in spool/, then delivered into outbox/ at once.
    assert.match(swaks.stdout, /<[-~]\s+250 2\.0\.0 Ok: queued as \S+/);
    const outbox = join(dir.path, 'outbox');
    const delivered = () => (existsSync(outbox) ? readdirSync(outbox).filter((f) => f.endsWith('.eml')) : []);
    for (let i = 0; i < 200 && delivered().length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    const files = delivered();
    assert.equal(files.length, 1);
    const file = join(dir.path, 'outbox', files[0]!);
    const message = readFileSync(file);
    assert.match(
      message.toString('latin1'),
      /^Return-Path: <a@example\.com>\r\nDelivered-To: <b@example\.net>\r\nReceived: from .*\r\n(?:\t.*\r\n)*DKIM-Signature: v=1; a=rsa-sha256;/,
    );

    const piped = await run('sh', ['-c', `"${NODE}" "${CLI}" verify < "${file}"`], { cwd: dir.path, timeout: 20_000 });
    assert.match(piped.stdout, /^pass d=example\.com s=s\d{6}a a=rsa-sha256 aligned/);

    const dns = await run(NODE, [CLI, 'keys', 'dns', '--json'], { cwd: dir.path, timeout: 20_000 });
    const records = Object.fromEntries((JSON.parse(dns.stdout) as { name: string; value: string }[]).map((r) => [r.name, r.value]));
    assert.deepEqual(await verifyWithDkimpy(message, records), [true]);
  });

  test('one JSON log line per message: client, envelope, From domain, d=, s=, self-check, reply, duration', (t) => {
    if (!requireTool(t, 'swaks', 'dkimpy')) return; // the message is the swaks test's
    const lines = output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const messages = lines.filter((l) => l.msg === 'message queued');
    assert.equal(messages.length, 1);
    const m = messages[0]!;
    assert.equal(m.client, '127.0.0.1');
    assert.equal(m.from, 'a@example.com');
    assert.deepEqual(m.to, ['b@example.net']);
    assert.equal(m.fromDomain, 'example.com');
    assert.match(String((m.signatures as string[])[0]), /^d=example\.com s=s\d{6}a a=rsa-sha256$/);
    assert.equal(m.selfCheck, 'pass');
    assert.match(String(m.reply), /^250 2\.0\.0 Ok: queued as \S+$/);
    assert.equal(typeof m.ms, 'number');
    const id = String(m.id);
    assert.ok(
      lines.some((l) => l.msg === 'recipient delivered' && l.id === id && /^250 2\.0\.0 Ok: written to/.test(String(l.reply))),
      'the delivery is logged under the same id',
    );
    const pem = readdirSync(join(dir.path, 'keys')).find((f) => f.endsWith('.pem'))!;
    const secret = readFileSync(join(dir.path, 'keys', pem), 'utf8').split('\n')[3]!; // a line from inside the key
    assert.ok(secret.length > 40);
    assert.equal(output.includes(secret), false, 'private key material in the output');
    assert.doesNotMatch(output, /PRIVATE KEY/);
  });

  test('SIGTERM stops it cleanly with exit status 0', async () => {
    const exited = new Promise<number | null>((resolve) => daemon.once('exit', (code) => resolve(code)));
    daemon.kill('SIGTERM');
    assert.equal(await exited, 0);
  });
});

describe('SIGTERM during a session', () => {
  test('the session in flight finishes with 250, then the daemon exits 0', async () => {
    const dir = tempDir();
    const daemon = serveDefault(dir.path);
    try {
      const port = listeningPort(await waitFor(daemon, '"relay listening"', 20_000));
      const { connect } = await import('node:net');
      const socket = connect(port, '127.0.0.1');
      let transcript = '';
      const replies: string[] = [];
      socket.on('data', (chunk) => {
        transcript += chunk.toString();
        for (const line of chunk.toString().split('\r\n')) if (/^\d{3} /.test(line)) replies.push(line);
      });
      const reply = async (count: number) => {
        for (let i = 0; i < 200 && replies.length < count; i++) await new Promise((r) => setTimeout(r, 25));
        assert.ok(replies.length >= count, `no reply ${count}: ${transcript}`);
        return replies[count - 1]!;
      };
      await reply(1);
      socket.write('EHLO client.test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n');
      assert.match(await reply(5), /^354/);
      const exited = new Promise<number | null>((resolve) => daemon.once('exit', (code) => resolve(code)));
      const stopping = waitFor(daemon, '"signal received"', 10_000);
      daemon.kill('SIGTERM');
      await stopping; // the message below comes after the relay has taken the signal
      socket.write('From: a@example.com\r\nTo: b@example.net\r\nSubject: in flight\r\n\r\nstill delivered\r\n.\r\n');
      // Accepted after SIGTERM: queued, and left in the spool for the next start (the manager takes no new work).
      const queued = /^250 2\.0\.0 Ok: queued as (\S+)/.exec(await reply(6));
      assert.ok(queued, transcript);
      socket.end('QUIT\r\n');
      assert.equal(await exited, 0);
      const delivered = existsSync(join(dir.path, 'outbox')) ? readdirSync(join(dir.path, 'outbox')).filter((f) => f.endsWith('.eml')).length : 0;
      const spooled = queuedIds(join(dir.path, 'spool')).filter((id) => id === queued[1]).length;
      assert.equal(delivered + spooled, 1, 'delivered, or kept in the spool: never lost');
    } finally {
      if (daemon.exitCode === null) daemon.kill('SIGKILL');
      dir.remove();
    }
  });
});

describe('SIGHUP', () => {
  test('reloads a changed configuration, and keeps the running one when the new file is broken', async (t) => {
    if (!requireTool(t, 'swaks')) return;
    const dir = tempDir();
    const config = join(dir.path, 'relay.yaml');
    const write = (unknownDomain: string) =>
      writeFileSync(
        config,
        `listen: {port: 0}\nmetrics: {listen: "127.0.0.1:0"}\ndelivery: {upstream: {type: file, dir: ${join(dir.path, 'out')}}}\nsigning: {unknownDomain: ${unknownDomain}}\nrotation: {check: "off"}\n`,
      );
    write('forward');
    const daemon = spawn(NODE, [CLI, 'serve', '--config', config], { cwd: dir.path, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    daemon.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    // A reload opens new listeners: on port 0 each gets a new free port, read from the log.
    const swaks = (from: string) =>
      run('swaks', ['--server', `127.0.0.1:${listeningPort(output)}`, '--from', from, '--to', 'b@example.net', '--h-From', from], { timeout: 20_000 }).then(
        (r) => r.stdout,
        (e: { stdout: string }) => e.stdout,
      );
    try {
      await waitFor(daemon, '"relay listening"', 20_000);
      assert.match(await swaks('a@unknown.test'), /<-\s+250 /);

      write('reject');
      daemon.kill('SIGHUP');
      await waitFor(daemon, 'configuration reloaded', 20_000);
      assert.match(await swaks('a@unknown.test'), /<\*\*\s+550 5\.7\.1 no active DKIM key for unknown\.test/);

      writeFileSync(config, 'listen: {port: [broken\n');
      daemon.kill('SIGHUP');
      await waitFor(daemon, 'reload refused', 20_000);
      assert.match(await swaks('a@unknown.test'), /<\*\*\s+550 5\.7\.1/, 'still running on the last good configuration');

      const exited = new Promise<number | null>((resolve) => daemon.once('exit', (code) => resolve(code)));
      daemon.kill('SIGTERM');
      assert.equal(await exited, 0);
    } finally {
      if (daemon.exitCode === null) daemon.kill('SIGKILL');
      dir.remove();
    }
  });
});
