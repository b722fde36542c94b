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
