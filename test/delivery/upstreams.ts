// Misbehaving smart hosts on loopback: smtp-server configured to refuse, and
// a raw node:net server for replies smtp-server cannot be made to give.
import { createServer, type Socket } from 'node:net';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import type { KeyStore } from '../../src/keys/key-store.ts';
import type { Received } from '../helpers/relay-harness.ts';

export interface TestUpstream {
  port: number;
  server: SMTPServer;
  received: Received[];
  /** Drops every open connection, so the next delivery opens a new one (and sees a new EHLO). */
  dropConnections(): void;
  close(): Promise<void>;
}

/** smtp-server on a free loopback port; `options` say how it misbehaves. Accepts and records what reaches DATA. */
export async function startUpstream(options: Partial<SMTPServerOptions> = {}): Promise<TestUpstream> {
  const received: Received[] = [];
  const sockets = new Set<Socket>();
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    closeTimeout: 500,
    logger: false,
    onData(stream, session, callback) {
      const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
      const to = session.envelope.rcptTo.map((r) => r.address);
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        received.push({ from, to, raw: Buffer.concat(chunks) });
        callback(null, 'Ok: queued');
      });
    },
    ...options,
  });
  server.on('error', () => {}); // a client that gives up on our certificate is what some tests want
  server.server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.server.address() as { port: number }).port,
    server,
    received,
    dropConnections: () => sockets.forEach((s) => s.destroy()),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/**
 * A raw SMTP server: `greeting` first, then `answer(line)` for each command
 * line (null: the default "250 ok"). QUIT always gets 221 and a close.
 */
export async function startScriptedUpstream(
  greeting: string,
  answer: (line: string) => string | null = () => null,
): Promise<{ port: number; lines: string[]; close(): Promise<void> }> {
  const lines: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.write(`${greeting}\r\n`);
    let pending = '';
    socket.on('data', (chunk) => {
      pending += chunk.toString('latin1');
      let at: number;
      while ((at = pending.indexOf('\r\n')) >= 0) {
        const line = pending.slice(0, at);
        pending = pending.slice(at + 2);
        lines.push(line);
        if (/^QUIT/i.test(line)) {
          socket.end('221 bye\r\n');
          return;
        }
        socket.write(`${answer(line) ?? '250 ok'}\r\n`);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    lines,
    close: () =>
      new Promise((resolve) => {
        sockets.forEach((s) => s.destroy());
        server.close(() => resolve());
      }),
  };
}

export const withKey = (store: KeyStore): void => {
  store.generate({ domain: 'example.com', algorithm: 'rsa', bits: 2048, activate: true });
};

export const MESSAGE = [
  'From: Payroll <payroll@example.com>',
  'To: Alice <alice@example.net>',
  'Subject: Your payslip',
  'Date: Sun, 22 Nov 2026 10:00:00 +0000',
  'Message-ID: <p1@example.com>',
  'MIME-Version: 1.0',
  'Content-Type: text/plain; charset=utf-8',
  'Content-Transfer-Encoding: 8bit',
  '',
  'Grüße aus der Lohnbuchhaltung',
  '',
].join('\r\n');

/**
 * A host that announces PIPELINING and CHUNKING (RFC 3030) and takes messages
 * by BDAT, and by DATA only when `acceptData` (refused otherwise, so a message
 * that arrives came by BDAT). A
 * recipient whose local part starts with "nobody" is refused (550). Records
 * each command with the number of the connection it came on, and each
 * message's octets exactly as the chunks carried them.
 */
export async function startChunkingUpstream(acceptData = false): Promise<{
  port: number;
  commands: { connection: number; line: string }[];
  received: Received[];
  dropConnections(): void;
  close(): Promise<void>;
}> {
  const commands: { connection: number; line: string }[] = [];
  const received: Received[] = [];
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createServer((socket) => {
    const connection = ++connections;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.write('220 chunky.test ESMTP\r\n');
    let pending = Buffer.alloc(0);
    let from = '';
    let to: string[] = [];
    let chunks: Buffer[] = [];
    /** Octets of a BDAT chunk still to come, and whether it is the last. */
    let chunk: { left: number; last: boolean } | null = null;
    /** In DATA's text, until the line with one dot. */
    let inData = false;
    const reset = (): void => {
      from = '';
      to = [];
      chunks = [];
    };
    socket.on('data', (data: Buffer) => {
      pending = Buffer.concat([pending, data]);
      for (;;) {
        if (chunk) {
          const take = Math.min(chunk.left, pending.length);
          chunks.push(pending.subarray(0, take));
          pending = pending.subarray(take);
          chunk.left -= take;
          if (chunk.left > 0) return;
          const { last } = chunk;
          chunk = null;
          if (to.length === 0) socket.write('554 5.5.1 No valid recipients\r\n');
          else if (!last) socket.write('250 2.0.0 chunk taken\r\n');
          else {
            received.push({ from, to, raw: Buffer.concat(chunks) });
            socket.write(`250 2.0.0 Ok: ${received.length}\r\n`);
          }
          if (last) reset();
          continue;
        }
        const end = pending.indexOf('\r\n');
        if (end < 0) return;
        if (inData) {
          const text = pending.subarray(0, end + 2);
          pending = pending.subarray(end + 2);
          if (text.length === 3 && text[0] === 0x2e) {
            inData = false;
            received.push({ from, to, raw: Buffer.concat(chunks) });
            socket.write(`250 2.0.0 Ok: ${received.length}\r\n`);
            reset();
          } else chunks.push(text[0] === 0x2e ? text.subarray(1) : text);
          continue;
        }
        const line = pending.subarray(0, end).toString('latin1');
        pending = pending.subarray(end + 2);
        commands.push({ connection, line });
        const bdat = /^BDAT (\d+)( LAST)?$/i.exec(line);
        if (/^EHLO/i.test(line)) socket.write('250-chunky.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n');
        else if (/^MAIL FROM:<([^>]*)>/i.test(line)) {
          from = /^MAIL FROM:<([^>]*)>/i.exec(line)![1]!;
          socket.write('250 2.1.0 Ok\r\n');
        } else if (/^RCPT TO:<([^>]*)>/i.test(line)) {
          const address = /^RCPT TO:<([^>]*)>/i.exec(line)![1]!;
          if (address.startsWith('nobody')) socket.write('550 5.1.1 No such user\r\n');
          else {
            to.push(address);
            socket.write('250 2.1.5 Ok\r\n');
          }
        } else if (bdat) chunk = { left: Number(bdat[1]), last: bdat[2] !== undefined };
        else if (/^RSET/i.test(line)) {
          reset();
          socket.write('250 2.0.0 Ok\r\n');
        } else if (/^QUIT/i.test(line)) return void socket.end('221 bye\r\n');
        else if (acceptData && /^DATA$/i.test(line)) {
          if (to.length === 0) socket.write('554 5.5.1 No valid recipients\r\n');
          else {
            inData = true;
            socket.write('354 go ahead\r\n');
          }
        } else socket.write('502 5.5.2 Only BDAT here\r\n');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    commands,
    received,
    dropConnections: () => sockets.forEach((s) => s.destroy()),
    close: () =>
      new Promise((resolve) => {
        sockets.forEach((s) => s.destroy());
        server.close(() => resolve());
      }),
  };
}
