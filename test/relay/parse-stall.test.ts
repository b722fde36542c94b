// One message must not hold the relay: while a session sends a header built
// to make parsers backtrack (a field name followed by a megabyte of spaces, a
// From: display name of dots), another session's NOOPs are still answered:
// a parser that backtracks holds the event loop for seconds to minutes, far
// past the bound below, which a busy machine's scheduling never reaches. (The
// latency other sessions see under load is measured by `npm run bench`.) The
// relay is the real `serve` process, so a relay that stalls cannot stall the
// test's own clock.
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { writeFileSync } from 'node:fs';
import { SqliteKeyStore } from '../../src/keys/store.ts';
import { serve, type Served } from '../cli/support.ts';
import { tempDir } from '../helpers/tmp.ts';

/** A stall, not a slow answer: each attack takes far longer than this when a parser backtracks. */
const NOOP_BOUND_MS = 1000;
/** Past this a NOOP counts as lost: the relay is stalled, no need to wait out the attack. */
const GIVE_UP_MS = 10_000;

/** A line-oriented SMTP client that resolves each reply as soon as its last line arrives. */
class Client {
  private buffered = '';
  private lines: string[] = [];
  private waiting: ((reply: string) => void) | null = null;
  private readonly done: string[] = [];
  readonly socket: Socket;

  constructor(port: number) {
    this.socket = connect(port, '127.0.0.1');
    this.socket.on('error', () => {});
    this.socket.on('data', (chunk: Buffer) => {
      this.buffered += chunk.toString('latin1');
      for (let at = this.buffered.indexOf('\r\n'); at >= 0; at = this.buffered.indexOf('\r\n')) {
        const line = this.buffered.slice(0, at);
        this.buffered = this.buffered.slice(at + 2);
        this.lines.push(line);
        if (line[3] === '-') continue;
        const reply = this.lines.join('\n');
        this.lines = [];
        const waiter = this.waiting;
        this.waiting = null;
        if (waiter) waiter(reply);
        else this.done.push(reply);
      }
    });
  }

  /** The next reply, or a rejection after `ms`. */
  next(ms = GIVE_UP_MS): Promise<string> {
    const ready = this.done.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = null;
        reject(new Error(`no reply within ${ms} ms`));
      }, ms);
      this.waiting = (reply) => {
        clearTimeout(timer);
        resolve(reply);
      };
    });
  }

  async command(line: string, ms?: number): Promise<string> {
    this.socket.write(`${line}\r\n`);
    return this.next(ms);
  }

  close(): void {
    this.socket.destroy();
  }
}

async function greeted(port: number): Promise<Client> {
  const client = new Client(port);
  assert.match(await client.next(), /^220 /);
  assert.match(await client.command('EHLO client.test'), /^250/);
  return client;
}

/**
 * Sends `message` in one session while another sends NOOP after NOOP; returns
 * the attack's reply and the slowest NOOP answer, in milliseconds.
 */
async function attack(port: number, message: Buffer): Promise<{ reply: string; slowest: number; noops: number }> {
  const watcher = await greeted(port);
  const sender = await greeted(port);
  try {
    assert.match(await sender.command('MAIL FROM:<a@example.com>'), /^250/);
    assert.match(await sender.command('RCPT TO:<b@example.net>'), /^250/);
    assert.match(await sender.command('DATA'), /^354/);
    let finished = false;
    let slowest = 0;
    let noops = 0;
    const watching = (async () => {
      while (!finished) {
        const start = performance.now();
        try {
          assert.match(await watcher.command('NOOP'), /^250/);
        } catch {
          slowest = Math.max(slowest, performance.now() - start);
          return;
        }
        slowest = Math.max(slowest, performance.now() - start);
        noops++;
      }
    })();
    sender.socket.write(Buffer.concat([message, Buffer.from('.\r\n')]));
    const reply = await sender.next(GIVE_UP_MS).finally(() => (finished = true));
    await watching;
    return { reply, slowest, noops };
  } finally {
    watcher.close();
    sender.close();
  }
}

function message(header: string): Buffer {
  return Buffer.from(`${header}\r\nTo: b@example.net\r\nDate: Mon, 23 Nov 2026 09:28:00 +0100\r\nMessage-ID: <stall@example.com>\r\n\r\nbody\r\n`, 'latin1');
}

const MB = 1_000_000;

/** Each took the old relay seconds to minutes (a 1,040,000-octet line: 853 s). */
const ATTACKS: [string, Buffer, RegExp][] = [
  [
    'a field name, 1 MB of spaces and a letter',
    message(`From: a@example.com\r\nX-Attack${' '.repeat(MB)}x: v`),
    /^552 5\.3\.4 Header field too large: "X-Attack {20,}/,
  ],
  ['a field name, 1 MB of tabs and a letter', message(`From: a@example.com\r\nX-Attack${'\t'.repeat(MB)}x: v`), /^552 5\.3\.4 Header field too large/],
  [
    'a field name, 60 KB of spaces and a letter (under the field bound)',
    message(`From: a@example.com\r\nX-Attack${' '.repeat(60_000)}x: v`),
    /^554 5\.6\.0 Malformed header: header line is not "Name: value"/,
  ],
  ['a display name "ceo@a", 60 KB of dots and a letter', message(`From: "ceo@a${'.'.repeat(60_000)}x" <a@example.com>`), /^554 5\.6\.0 .*no whitespace/],
  [
    'a display name "ceo@a", 60 KB of dots and hyphens and a letter',
    message(`From: "ceo@a${'.-'.repeat(30_000)}x" <a@example.com>`),
    /^554 5\.6\.0 .*no whitespace/,
  ],
  ['a 60 KB comment of "(" after the address', message(`From: a@example.com ${'('.repeat(60_000)}`), /^550 5\.6\.0 Cannot sign: .*never closed/],
  [
    'a 60 KB encoded-word of 8-bit octets (UTF-8)',
    message(`From: =?utf-8?q?${Buffer.from('é'.repeat(30_000)).toString('latin1')}?= <a@example.com>`),
    /^554 5\.6\.0 .*no whitespace/,
  ],
  [
    'a 60 KB encoded-word of 8-bit octets (not UTF-8)',
    message(`From: =?utf-8?q?${'\xe9'.repeat(60_000)}?= <a@example.com>`),
    /^550 5\.6\.0 Cannot sign: .*not UTF-8/,
  ],
];

describe('one message cannot hold the relay', () => {
  let dir: string;
  let relay: Served;

  before(async () => {
    dir = tempDir();
    const keys = join(dir, 'keys');
    const store = SqliteKeyStore.open(keys);
    store.generate({ domain: 'example.com', algorithm: 'ed25519', activate: true });
    store.close();
    const config = join(dir, 'relay.yaml');
    writeFileSync(
      config,
      `listen: {port: 0, hostname: relay.test}\nkeys: {dir: ${keys}}\nqueue: {dir: ${join(dir, 'spool')}}\nmetrics: {listen: "127.0.0.1:0"}\n` +
        `rotation: {check: "off"}\ndelivery: {mode: sync, upstream: {type: file, dir: ${join(dir, 'outbox')}}}\n`,
    );
    relay = await serve(['--config', config], dir);
    // One ordinary message first: the code paths a first message loads and compiles are not the attack's doing.
    const warm = await attack(relay.port(), message('From: a@example.com\r\nSubject: warm-up'));
    assert.match(warm.reply, /^250 /);
  });
  after(() => relay.kill());

  for (const [name, msg, expected] of ATTACKS) {
    test(`${name}: answered, and NOOPs of another session within ${NOOP_BOUND_MS} ms`, { timeout: 120_000 }, async (t) => {
      const { reply, slowest, noops } = await attack(relay.port(), msg);
      t.diagnostic(`slowest of ${noops} NOOPs: ${slowest.toFixed(1)} ms`);
      assert.match(reply, expected);
      assert.ok(noops > 0, 'no NOOP was answered while the message was handled');
      assert.ok(slowest < NOOP_BOUND_MS, `a NOOP waited ${slowest.toFixed(0)} ms while the relay read ${name}`);
    });
  }
});
