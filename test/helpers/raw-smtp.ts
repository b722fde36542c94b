// A raw SMTP client for tests that need to say what nodemailer never would:
// unknown parameters, trickled DATA, many sessions held open.
import { connect, type Socket } from 'node:net';

export interface RawSession {
  socket: Socket;
  /** Complete replies so far ("250 ok", multi-line joined by \n). */
  replies: string[];
  closed: Promise<void>;
  write(text: string): void;
  /** Waits until `count` replies have arrived (or the connection closed, or ms passed). */
  reply(count: number, ms?: number): Promise<string | undefined>;
}

export async function rawSession(port: number): Promise<RawSession> {
  const socket = connect(port, '127.0.0.1');
  const replies: string[] = [];
  let pending = '';
  let lines: string[] = [];
  let isClosed = false;
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      isClosed = true;
      resolve();
    }),
  );
  socket.on('error', () => {});
  socket.on('data', (chunk) => {
    pending += chunk.toString('latin1');
    let at: number;
    while ((at = pending.indexOf('\r\n')) >= 0) {
      const line = pending.slice(0, at);
      pending = pending.slice(at + 2);
      lines.push(line);
      if (/^\d{3} /.test(line) || !/^\d{3}-/.test(line)) {
        replies.push(lines.join('\n'));
        lines = [];
      }
    }
  });
  const session: RawSession = {
    socket,
    replies,
    closed,
    write: (text) => socket.write(text),
    async reply(count, ms = 10_000) {
      const until = Date.now() + ms;
      while (replies.length < count && !isClosed && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      return replies[count - 1];
    },
  };
  return session;
}
