// smtp-server's undocumented members are reached through one module of ours,
// so a smtp-server upgrade that changes them breaks that module and this
// test: each use is checked against a real SMTPServer over loopback.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect, TLSSocket } from 'node:tls';
import { SMTPServer } from 'smtp-server';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import * as internals from '../../src/relay/smtp-server-internals.ts';
import { selfSignedCert, tempDir } from '../helpers/relay-harness.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const QUARANTINE = join('src', 'relay', 'smtp-server-internals.ts');
/** Far from smtp-server's default, so the idle timer seen on a socket is ours. */
const SOCKET_TIMEOUT_MS = 123_456;
/** The longest any step below may take. */
const WAIT_MS = 10_000;
/** The first 16 hex digits of the SHA-256 of smtp-server 3.21.6's _feedDataStream source. */
const SHIPPED_READER = '9d8b903f9a3a6354';

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Resolves with `promise`, or fails once `ms` have passed. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms)));
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A client socket that collects the server's reply lines. */
interface Client {
  socket: Socket;
  closed: Promise<unknown>;
  /** The next reply line that matches `pattern` (lines before it are skipped). */
  line(pattern: RegExp): Promise<string>;
  /** Reads further lines from `socket` instead (after STARTTLS). */
  read(socket: Socket): void;
}

/** Sends `commands` (STARTTLS, maybe more), waits for the 220, and makes the TLS handshake on the client's socket. */
async function startTls(c: Client, commands: string): Promise<TLSSocket> {
  c.socket.write(commands);
  await c.line(/^220 /);
  const secure = tlsConnect({ socket: c.socket, rejectUnauthorized: false });
  secure.on('error', () => {});
  await within(once(secure, 'secureConnect'), WAIT_MS, 'the TLS handshake');
  c.read(secure);
  return secure;
}

function client(port: number): Client {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  const lines: string[] = [];
  const waiting: (() => void)[] = [];
  let pending = '';
  const onData = (chunk: Buffer) => {
    pending += chunk.toString('latin1');
    for (let at = pending.indexOf('\r\n'); at >= 0; at = pending.indexOf('\r\n')) {
      lines.push(pending.slice(0, at));
      pending = pending.slice(at + 2);
    }
    for (const wake of waiting.splice(0)) wake();
  };
  socket.on('data', onData);
  return {
    socket,
    closed: once(socket, 'close'),
    async line(pattern) {
      return within(
        (async () => {
          for (;;) {
            const line = lines.shift();
            if (line !== undefined && pattern.test(line)) return line;
            if (line === undefined) await new Promise<void>((wake) => waiting.push(wake));
          }
        })(),
        WAIT_MS,
        `a reply matching ${pattern}`,
      );
    },
    read(next) {
      pending = '';
      next.on('data', onData);
    },
  };
}

test('nothing in src/ reaches into smtp-server except src/relay/smtp-server-internals.ts', () => {
  const own = sources(join(ROOT, 'src'));
  assert.ok(own.length > 20, 'the source files were found');
  const offenders = own
    .filter((file) => relative(ROOT, file) !== QUARANTINE && /from ['"]smtp-server/.test(readFileSync(file, 'utf8')))
    .filter((file) => /\b_armTimeout\b|\._socket\b|\.connections\b|\.connect\(/.test(readFileSync(file, 'utf8')))
    .map((file) => relative(ROOT, file));
  assert.deepEqual(offenders, []);
  const listener = readFileSync(join(ROOT, 'src', 'relay', 'listener.ts'), 'utf8');
  assert.match(listener, /smtp-server-internals\.ts/, 'the listener goes through the quarantine');
});

describe('what the listener relies on in smtp-server', () => {
  const dir = tempDir();
  let smtp: SMTPServer;
  let door: Server;
  let port: number;
  let next = 0;
  /** Session ids as onConnect saw them, and the TLS sockets onSecure got. */
  const connected: string[] = [];
  const secured = new Map<string, TLSSocket>();
  const closed = new Map<string, () => void>();
  /** What each session's server-side socket handed to the kernel, one entry a write. */
  const written = new Map<string, string[]>();

  /** Records each write `socket` makes (a corked socket's writes go out together through _writev). */
  function recordWrites(socket: Socket, writes: string[]): void {
    const write = socket._write.bind(socket);
    socket._write = (chunk: Buffer, encoding, callback) => {
      writes.push(chunk.toString('latin1'));
      write(chunk, encoding, callback);
    };
    const writev = socket._writev!.bind(socket);
    socket._writev = (chunks, callback) => {
      writes.push(chunks.map((c) => Buffer.from(c.chunk).toString('latin1')).join(''));
      writev(chunks, callback);
    };
  }

  /** A session run by serveSocket under an id of ours; resolves once its 220 greeting arrived. */
  async function session(): Promise<{ id: string; client: Client; closedOnServer: Promise<void> }> {
    const id = `test-session-${++next}`;
    const closedOnServer = new Promise<void>((resolve) => closed.set(id, resolve));
    const c = client(port);
    await c.line(/^220 /);
    return { id, client: c, closedOnServer };
  }

  before(async () => {
    internals.batchPipelinedReplies(); // as the listener does: the STARTTLS test below runs with it
    const cert = selfSignedCert(dir.path);
    smtp = new SMTPServer({
      key: readFileSync(cert.key),
      cert: readFileSync(cert.cert),
      logger: false,
      authOptional: true,
      disabledCommands: ['AUTH'],
      socketTimeout: SOCKET_TIMEOUT_MS,
      onConnect(s, callback) {
        connected.push(s.id);
        callback();
      },
      onSecure(socket, s, callback) {
        secured.set(s.id, socket as TLSSocket);
        callback();
      },
      onClose(s) {
        closed.get(s.id)?.();
      },
    });
    door = createServer((socket) => {
      const id = `test-session-${next}`;
      written.set(id, []);
      recordWrites(socket, written.get(id)!);
      internals.serveSocket(smtp, socket, id);
    });
    door.listen(0, '127.0.0.1');
    await once(door, 'listening');
    port = (door.address() as AddressInfo).port;
  });
  after(async () => {
    internals.closeAllSessions(smtp, 421, 'test over');
    await new Promise<void>((resolve) => door.close(() => resolve()));
    await new Promise<void>((resolve) => smtp.close(() => resolve()));
    dir.remove();
  });

  test('serveSocket: the session runs under our id; connectionOf finds it; sendReply(421) writes the line and closes it', async () => {
    const { id, client: c, closedOnServer } = await session();
    assert.ok(connected.includes(id), `onConnect saw ${connected.join(', ')}`);
    const connection = internals.connectionOf(smtp, id);
    assert.ok(connection, 'connectionOf finds the session');
    assert.equal(connection.session.id, id);
    internals.sendReply(connection, 421, '4.4.2 Closing for the test');
    assert.equal(await c.line(/^421 /), '421 4.4.2 Closing for the test');
    await within(c.closed, WAIT_MS, 'the client socket closing');
    await within(closedOnServer, WAIT_MS, 'onClose');
    assert.equal(internals.connectionOf(smtp, id), undefined, 'a closed session is gone');
  });

  test('closeSession closes that session and no other; closeAllSessions tells each the reply and closes it', async () => {
    const first = await session();
    const second = await session();
    internals.closeSession(smtp, first.id);
    await within(first.client.closed, WAIT_MS, 'the first session closing');
    assert.ok(internals.connectionOf(smtp, second.id), 'the second session is still open');
    second.client.socket.write('NOOP\r\n');
    await second.client.line(/^250 /);
    internals.closeAllSessions(smtp, 421, 'Server shutting down');
    assert.match(await second.client.line(/^421 /), /^421 .*Server shutting down/);
    await within(second.client.closed, WAIT_MS, 'the second session closing');
  });

  test('onStartTlsHandshake: called once, with the new TLS socket as its handshake starts, whose idle timer smtp-server still arms', async () => {
    const { id, client: c } = await session();
    const connection = internals.connectionOf(smtp, id);
    assert.ok(connection);
    const seen: { socket: TLSSocket; securedYet: boolean; timeout: number | undefined }[] = [];
    internals.onStartTlsHandshake(connection, (socket) => seen.push({ socket, securedYet: secured.has(id), timeout: socket.timeout }));
    c.socket.write('EHLO client.test\r\n');
    await c.line(/^250 /);
    c.socket.write('NOOP\r\n'); // re-arms the idle timer of the plain socket: not a handshake
    await c.line(/^250 /);
    assert.equal(seen.length, 0, 'nothing before STARTTLS');
    const secure = await startTls(c, 'STARTTLS\r\n');
    secure.write('EHLO client.test\r\n');
    await c.line(/^250 /);
    secure.write('NOOP\r\n'); // re-arms the idle timer of the TLS socket, now the session's
    await c.line(/^250 /);
    assert.equal(seen.length, 1, 'called once, for the upgrade');
    assert.ok(seen[0]!.socket instanceof TLSSocket);
    assert.equal(seen[0]!.securedYet, false, 'called before the handshake completed');
    assert.equal(seen[0]!.socket, secured.get(id), "the socket that becomes the session's");
    assert.equal(seen[0]!.timeout, SOCKET_TIMEOUT_MS, 'smtp-server armed its idle timer on it first');
    secure.destroy();
  });

  test('batchPipelinedReplies: a pipelined group is answered in one write, once its last command is answered; a lone command at once', async () => {
    const { id, client: c } = await session();
    const writes = written.get(id)!;
    c.socket.write('EHLO client.test\r\n');
    await c.line(/^250 /);
    writes.length = 0;
    // smtp-server's own handlers answer MAIL and RCPT on a later turn of the event loop, as the relay's do.
    c.socket.write('MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n');
    await c.line(/^354 /);
    assert.equal(writes.length, 1, `the replies went out in ${writes.length} writes: ${JSON.stringify(writes)}`);
    assert.match(writes[0]!, /^250 [^\r]*\r\n250 [^\r]*\r\n250 [^\r]*\r\n354 [^\r]*\r\n$/);
    c.socket.write('Subject: x\r\n\r\nbody\r\n.\r\n');
    await c.line(/^250 /);
    writes.length = 0;
    c.socket.write('NOOP\r\n');
    await c.line(/^250 /);
    assert.deepEqual(writes, ['250 OK\r\n']);
    c.socket.destroy();
  });

  test('batchPipelinedReplies: STARTTLS with a command pipelined behind it still gets its 220 before the handshake, and the command is dropped', async () => {
    const { client: c } = await session();
    c.socket.write('EHLO client.test\r\n');
    await c.line(/^250 /);
    const secure = await startTls(c, 'STARTTLS\r\nNOOP\r\n');
    secure.write('EHLO client.test\r\n');
    // The first line in TLS is the EHLO's: a NOOP carried over would have answered "250 OK" first.
    assert.match(await c.line(/./), /^250-/);
    secure.destroy();
  });
});

describe('feedDataStream reads DATA exactly as smtp-server does', () => {
  const shipped = internals.smtpServerFeedDataStream;

  test('smtp-server still ships the DATA reader that feedDataStream was written from', () => {
    // A new smtp-server release that changes its reader (a fix to how DATA ends, say) must be read
    // and carried over to feedDataStream before this hash is updated.
    const source = shipped.toString();
    assert.equal(createHash('sha256').update(source).digest('hex').slice(0, 16), SHIPPED_READER, source);
  });

  /** What a reader made of `input` cut at `cuts`: the octets it passed on, where DATA ended, what it held. */
  async function read(reader: typeof shipped, input: Buffer, cuts: number[]): Promise<string> {
    const stream = new SMTPStream();
    stream._feedDataStream = reader; // its own property: the escape path calls this._feedDataStream again
    const data = stream.startDataMode();
    const passed: Buffer[] = [];
    data.on('data', (b: Buffer) => passed.push(b));
    let ended: { content: Buffer | false; rest: Buffer } | undefined;
    stream._endDataMode = (content, rest, callback) => {
      ended = { content, rest: Buffer.from(rest) };
      callback();
    };
    const points = [0, ...cuts, input.length];
    for (let k = 0; k + 1 < points.length && !ended; k++) {
      const piece = Buffer.from(input.subarray(points[k], points[k + 1]));
      await new Promise<void>((resolve, reject) => stream._feedDataStream(piece, (err) => (err ? reject(err) : resolve())));
    }
    await new Promise((resolve) => setImmediate(resolve)); // the stream's 'data' events
    return JSON.stringify({
      passed: Buffer.concat(passed).toString('latin1'),
      final: ended ? (ended.content === false ? false : ended.content.toString('latin1')) : null,
      rest: ended?.rest.toString('latin1') ?? null,
      counted: stream.dataBytes,
      atStart: stream._atDataStart,
      held: stream._lastBytes === false ? false : stream._lastBytes.toString('latin1'),
    });
  }

  async function same(input: Buffer, cuts: number[]): Promise<void> {
    const theirs = await read(shipped, input, cuts);
    const ours = await read(internals.feedDataStream, input, cuts);
    assert.equal(ours, theirs, `input ${JSON.stringify(input.toString('latin1'))} cut at ${cuts.join(',')}`);
  }

  test('hand-picked inputs, cut at every octet, at no octet and at each single place', async () => {
    const inputs = [
      '.\r\n',
      '..\r\n.\r\n',
      'a\r\n.\r\n',
      '\r\n.\r\n',
      'a\r\n..b\r\n.\r\nMAIL FROM:<x>\r\n',
      'a\n.\nb\r\n.\r\n', // a dot after a bare LF ends nothing (SMTP smuggling)
      'a\r\n.\nb\r\n.\r\n',
      'a\n.\r\nb\r\n.\r\n',
      'a\r\n.\rb\r\n.\r\n',
      '.a\r\n.\r\n',
      '\n..a\r\n.\r\n', // a bare LF first: no line start before it
      '\n.\r\nb\r\n.\r\n',
      '..\r\n..\r\n...\r\n.\r\n',
      'no end yet\r\n',
      'x\r\n.',
      'x\r\n.\r',
      '.',
      '',
    ];
    for (const text of inputs) {
      const input = Buffer.from(text, 'latin1');
      await same(input, []);
      await same(
        input,
        Array.from({ length: Math.max(0, input.length - 1) }, (_, i) => i + 1),
      );
      for (let at = 1; at < input.length; at++) await same(input, [at]);
    }
  });

  test('2,000 random inputs of CR, LF, dots and text, cut at random places', async () => {
    let seed = 20261206;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const alphabet = ['\r', '\n', '.', '\r\n', '\r\n.', '\r\n.\r\n', '\r\n..', 'a', ' ', 'text'];
    for (let n = 0; n < 2000; n++) {
      const parts: string[] = [];
      const count = random(60);
      for (let p = 0; p < count; p++) parts.push(alphabet[random(alphabet.length)]!);
      if (random(2)) parts.push('\r\n.\r\n', 'QUIT\r\n');
      const input = Buffer.from(parts.join(''), 'latin1');
      const cuts = [...new Set(Array.from({ length: random(6) }, () => 1 + random(Math.max(1, input.length - 1))))]
        .filter((c) => c < input.length)
        .sort((a, b) => a - b);
      await same(input, cuts);
    }
  });

  test('a chunk of dot-stuffed lines is read in the one call and handed on in one piece, not a turn and a piece a line', async () => {
    const stream = new SMTPStream();
    stream._feedDataStream = internals.feedDataStream;
    const data = stream.startDataMode();
    const passed: Buffer[] = [];
    data.on('data', (b: Buffer) => passed.push(b));
    const input = Buffer.from('first\r\n' + '..stuffed\r\n'.repeat(100) + 'last\r\n');
    let done = false;
    stream._feedDataStream(input, () => (done = true));
    // Called back before this function returns: smtp-server's own reader would still have 100 turns to wait.
    assert.equal(done, true);
    assert.equal(stream.dataBytes, input.length - 100 - 4);
    await new Promise((resolve) => setImmediate(resolve)); // the stream's 'data' events
    // The last 4 octets wait for the next chunk (they may begin the end of DATA).
    assert.deepEqual(
      passed.map((b) => b.toString()),
      ['first\r\n' + '.stuffed\r\n'.repeat(100) + 'la'],
    );
  });

  test('a 500 KB message in 64 KiB chunks, with stuffed dots and the end straddling a chunk', async () => {
    const line = Buffer.from('The quick brown fox jumps over the lazy dog.\r\n..stuffed\r\n');
    const body = Buffer.concat([Buffer.alloc(0), ...Array.from({ length: Math.ceil(5e5 / line.length) }, () => line)]);
    const input = Buffer.concat([body, Buffer.from('\r\n.\r\nRSET\r\n')]);
    const straddle = body.length + 2; // between the CRLF and the dot
    await same(input, [65536, 131072, straddle]);
    await same(
      input,
      Array.from({ length: Math.floor(input.length / 65536) }, (_, k) => (k + 1) * 65536),
    );
  });
});
