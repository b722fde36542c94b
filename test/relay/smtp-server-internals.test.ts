// smtp-server's undocumented members are reached through one module of ours,
// so a smtp-server upgrade that changes them breaks that module and this
// test: each use is checked against a real SMTPServer over loopback.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect, TLSSocket } from 'node:tls';
import { SMTPServer } from 'smtp-server';
import * as internals from '../../src/relay/smtp-server-internals.ts';
import { selfSignedCert, tempDir } from '../helpers/relay-harness.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const QUARANTINE = join('src', 'relay', 'smtp-server-internals.ts');
/** Far from smtp-server's default, so the idle timer seen on a socket is ours. */
const SOCKET_TIMEOUT_MS = 123_456;
/** The longest any step below may take. */
const WAIT_MS = 10_000;

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

  /** A session run by serveSocket under an id of ours; resolves once its 220 greeting arrived. */
  async function session(): Promise<{ id: string; client: Client; closedOnServer: Promise<void> }> {
    const id = `test-session-${++next}`;
    const closedOnServer = new Promise<void>((resolve) => closed.set(id, resolve));
    const c = client(port);
    await c.line(/^220 /);
    return { id, client: c, closedOnServer };
  }

  before(async () => {
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
    door = createServer((socket) => internals.serveSocket(smtp, socket, `test-session-${next}`));
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
    c.socket.write('STARTTLS\r\n');
    await c.line(/^220 /);
    const secure = tlsConnect({ socket: c.socket, rejectUnauthorized: false });
    secure.on('error', () => {});
    await within(once(secure, 'secureConnect'), WAIT_MS, 'the TLS handshake');
    c.read(secure);
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
});
