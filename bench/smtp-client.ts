// A minimal SMTP client session for load: one connection, EHLO once, then per
// message MAIL, RCPT and DATA sent in one group (RFC 2920 pipelining), the
// content after the 354, and the next message after the final reply.
import { connect, type Socket } from 'node:net';
import { now } from './stats.ts';

export interface Sent {
  /** When the last octet of the content (the final ".") was handed to the socket, on the shared clock. */
  lastByteAt: number;
  /** The reply code to the content: 250 when accepted. */
  code: number;
  /** When that reply was read, on the same clock. */
  repliedAt: number;
}

export class SmtpSession {
  private buffer = '';
  private waiting: { count: number; replies: number[]; resolve: (codes: number[]) => void; reject: (err: Error) => void } | undefined;
  private closed: Error | undefined;

  private readonly socket: Socket;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => this.onData(chunk));
    const fail = (err: Error) => {
      this.closed = err;
      this.waiting?.reject(err);
      this.waiting = undefined;
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('connection closed by the server')));
  }

  static async open(port: number, host = '127.0.0.1'): Promise<SmtpSession> {
    const socket = connect({ port, host });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const session = new SmtpSession(socket);
    await session.expect(1, [220]);
    socket.write('EHLO load.bench\r\n');
    await session.expect(1, [250]);
    return session;
  }

  /** Sends one message (dot-stuffed already, ending in CRLF) from `from` to `to`. */
  async send(from: string, to: string, content: Buffer): Promise<Sent> {
    this.socket.write(`MAIL FROM:<${from}>\r\nRCPT TO:<${to}>\r\nDATA\r\n`);
    const codes = await this.expect(3, []);
    if (codes[2] !== 354) {
      this.socket.write('RSET\r\n');
      await this.expect(1, []);
      return { lastByteAt: now(), code: codes.find((c) => c >= 400) ?? codes[2]!, repliedAt: now() };
    }
    this.socket.write(content);
    // The callback runs once the final "." has left for the kernel: a large message may queue in user space first.
    let lastByteAt = NaN;
    this.socket.write('.\r\n', () => (lastByteAt = now()));
    const [code] = await this.expect(1, []);
    return { lastByteAt, code: code!, repliedAt: now() };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.socket.write('QUIT\r\n');
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => (this.socket.destroy(), resolve()), 2000);
      this.socket.once('close', () => (clearTimeout(timer), resolve()));
    });
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** Waits for `count` final replies; `codes`, when given, are the acceptable ones. */
  private expect(count: number, codes: number[]): Promise<number[]> {
    if (this.closed) return Promise.reject(this.closed);
    return new Promise((resolve, reject) => {
      this.waiting = {
        count,
        replies: [],
        resolve: (got) => (codes.length > 0 && !codes.includes(got[0]!) ? reject(new Error(`server replied ${got[0]}`)) : resolve(got)),
        reject,
      };
      this.onData('');
    });
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let end: number;
    while (this.waiting && (end = this.buffer.indexOf('\r\n')) >= 0) {
      const line = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      if (line[3] === '-') continue; // a continuation line of a multi-line reply
      const waiting = this.waiting;
      waiting.replies.push(Number(line.slice(0, 3)));
      if (waiting.replies.length === waiting.count) {
        this.waiting = undefined;
        waiting.resolve(waiting.replies);
      }
    }
  }
}
