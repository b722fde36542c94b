// A raw SMTP client over node:net for the fuzzer: it writes whatever bytes it
// is given (no dot-stuffing, no line-ending repair) and parses every byte the
// server sends back into replies, checking each line's form as it goes.
// Every wait has a timeout; nothing here can hang a test.
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';

export interface Reply {
  code: number;
  /** Each line's text after "NNN-" / "NNN ". */
  lines: string[];
  /** The whole reply as received, lines joined with "\n", for reports. */
  raw: string;
}

/** RFC 5321 §4.2 / §4.5.3.1.5: "NNN" SP/"-" textstring CRLF; textstring = 1*(HT / %d32-126); a line is at most 512 octets. */
const REPLY_LINE = /^([2-5][0-5]\d)([ -])([\t\x20-\x7e]*)$/;
const LENIENT_REPLY_LINE = /^(\d{3})([ -]|$)(.*)$/s;
export const MAX_REPLY_LINE = 512;

export interface ConnectOptions {
  port: number;
  host?: string;
  localAddress?: string;
  /** Connection set-up limit. */
  timeoutMs?: number;
  /** Implicit TLS: the handshake is done before the client is handed out. */
  tls?: ConnectionOptions;
}

export class RawSmtpClient {
  /** The socket replies are read from and commands written to: a TLS one after startTls(). */
  socket: Socket;
  /** Every complete reply, in order. */
  readonly replies: Reply[] = [];
  /** Lines that were not well-formed SMTP reply lines, with the reason. */
  readonly malformed: string[] = [];
  /** Bytes received in all. */
  received = 0;
  closed = false;
  /** Set when the server ended its side (FIN) or the socket errored. */
  serverEnded = false;
  error: Error | undefined;

  #pending: Buffer = Buffer.alloc(0);
  #partial: { code: number; lines: string[]; raw: string[] } | undefined;
  #read = 0;
  #waiters = new Set<() => void>();
  #closedPromise: Promise<void>;

  private constructor(socket: Socket) {
    this.socket = socket;
    this.#listen(socket);
    this.#closedPromise = new Promise((resolve) =>
      socket.once('close', () => {
        this.closed = true;
        this.#finish();
        this.#wake();
        resolve();
      }),
    );
  }

  #listen(socket: Socket): void {
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => {
      this.serverEnded = true;
      this.#wake();
    });
    socket.on('error', (err) => {
      this.error = err;
      this.#wake();
    });
  }

  static async connect(options: ConnectOptions): Promise<RawSmtpClient> {
    const client = await RawSmtpClient.#connect(options);
    if (options.tls && !(await client.startTls(options.tls, options.timeoutMs ?? 5000))) {
      await client.destroy();
      throw new Error(`TLS handshake with port ${options.port} failed: ${client.error?.message ?? 'no answer'}`);
    }
    return client;
  }

  /**
   * Starts TLS on the connection (after "220" to STARTTLS, or at once for implicit TLS);
   * resolves false when the handshake fails or takes longer than `timeoutMs`.
   */
  startTls(options: ConnectionOptions = {}, timeoutMs = 5000): Promise<boolean> {
    const raw = this.socket;
    raw.removeAllListeners('data');
    raw.removeAllListeners('end');
    const secure = tlsConnect({ socket: raw, rejectUnauthorized: false, ...options });
    this.socket = secure;
    this.#listen(secure);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      secure.once('secureConnect', () => {
        clearTimeout(timer);
        resolve(true);
      });
      secure.once('error', () => {
        clearTimeout(timer);
        resolve(false);
      });
      secure.once('close', () => {
        clearTimeout(timer);
        resolve(false);
      });
    });
  }

  static #connect(options: ConnectOptions): Promise<RawSmtpClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port: options.port, host: options.host ?? '127.0.0.1', localAddress: options.localAddress });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect to port ${options.port} timed out`));
      }, options.timeoutMs ?? 5000);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeListener('error', onError);
        resolve(new RawSmtpClient(socket));
      });
      const onError = (err: Error) => {
        clearTimeout(timer);
        reject(err);
      };
      socket.once('error', onError);
    });
  }

  /** Replies not yet handed out by readReply. */
  get unread(): number {
    return this.replies.length - this.#read;
  }

  /** Writes bytes; resolves false if the socket can no longer be written (the server may have hung up). */
  write(data: Buffer | string): Promise<boolean> {
    if (this.closed || this.socket.destroyed || !this.socket.writable) return Promise.resolve(false);
    return new Promise((resolve) => {
      try {
        this.socket.write(data, (err) => resolve(!err));
      } catch {
        resolve(false);
      }
    });
  }

  /** The next reply not read yet; null when none arrives in time or the connection is gone. */
  async readReply(timeoutMs: number): Promise<Reply | null> {
    const deadline = Date.now() + timeoutMs;
    while (this.#read >= this.replies.length) {
      if (this.closed || this.serverEnded || this.error) return null;
      const left = deadline - Date.now();
      if (left <= 0) return null;
      await this.#wait(left);
    }
    return this.replies[this.#read++]!;
  }

  /** Sends one command line (CRLF added) and reads its reply. */
  async command(line: string | Buffer, timeoutMs: number): Promise<Reply | null> {
    const data = typeof line === 'string' ? Buffer.from(line + '\r\n', 'latin1') : Buffer.concat([line, Buffer.from('\r\n')]);
    if (!(await this.write(data))) return this.readReply(0);
    return this.readReply(timeoutMs);
  }

  /** Reads replies until `count` more have arrived, the connection ends or the time is up. */
  async readReplies(count: number, timeoutMs: number): Promise<Reply[]> {
    const out: Reply[] = [];
    const deadline = Date.now() + timeoutMs;
    while (out.length < count) {
      const reply = await this.readReply(Math.max(0, deadline - Date.now()));
      if (!reply) break;
      out.push(reply);
    }
    return out;
  }

  /** Waits until nothing new has arrived for `quietMs` (or `maxMs` passed); returns the replies read meanwhile. */
  async drain(quietMs: number, maxMs: number): Promise<Reply[]> {
    const out: Reply[] = [];
    const deadline = Date.now() + maxMs;
    while (Date.now() < deadline) {
      const reply = await this.readReply(Math.min(quietMs, Math.max(0, deadline - Date.now())));
      if (!reply) break;
      out.push(reply);
    }
    return out;
  }

  /** Half-closes: no more data from us, the server may still answer. */
  halfClose(): void {
    if (!this.socket.destroyed) this.socket.end();
  }

  /** Resolves true once the server has closed the connection, false if it has not within `timeoutMs`. */
  async waitClosed(timeoutMs: number): Promise<boolean> {
    if (this.closed) return true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const result = await Promise.race([this.#closedPromise.then(() => true), timeout]);
    clearTimeout(timer);
    return result;
  }

  /** Closes at once (RST-like from our side); resolves when the socket is gone. */
  async destroy(): Promise<void> {
    this.socket.destroy();
    await this.#closedPromise;
  }

  /** End politely: half-close, wait a little for the server to close, then destroy. */
  async close(timeoutMs = 2000): Promise<void> {
    this.halfClose();
    if (!(await this.waitClosed(timeoutMs))) await this.destroy();
  }

  #onData(chunk: Buffer): void {
    this.received += chunk.length;
    this.#pending = this.#pending.length ? Buffer.concat([this.#pending, chunk]) : chunk;
    let start = 0;
    for (;;) {
      const lf = this.#pending.indexOf(0x0a, start);
      if (lf < 0) break;
      const end = lf > start && this.#pending[lf - 1] === 0x0d ? lf - 1 : -1;
      const line = this.#pending.subarray(start, end < 0 ? lf : end).toString('latin1');
      if (end < 0) this.malformed.push(`bare LF in reply line: ${JSON.stringify(line.slice(0, 200))}`);
      this.#line(line, lf + 1 - start);
      start = lf + 1;
    }
    this.#pending = this.#pending.subarray(start);
    if (this.#pending.length > 64 * 1024) {
      this.malformed.push(`over 64 KiB without a line end: ${JSON.stringify(this.#pending.subarray(0, 200).toString('latin1'))}`);
      this.#pending = Buffer.alloc(0);
    }
    this.#wake();
  }

  #line(line: string, octets: number): void {
    if (octets > MAX_REPLY_LINE)
      this.malformed.push(`reply line of ${octets} octets (RFC 5321 limit ${MAX_REPLY_LINE}): ${JSON.stringify(line.slice(0, 200))}…`);
    let match = REPLY_LINE.exec(line);
    if (!match) {
      this.malformed.push(`not "NNN text" with printable ASCII text: ${JSON.stringify(line.slice(0, 300))}`);
      // Still take it as a reply when it starts with a code, so the session stays in step.
      match = LENIENT_REPLY_LINE.exec(line);
      if (!match) return;
    }
    const code = Number(match[1]);
    const last = match[2] !== '-';
    if (this.#partial && this.#partial.code !== code) {
      this.malformed.push(`multi-line reply changed code ${this.#partial.code} → ${code}: ${JSON.stringify(line.slice(0, 200))}`);
    }
    const partial = this.#partial ?? { code, lines: [], raw: [] };
    partial.lines.push(match[3]!);
    partial.raw.push(line);
    if (last) {
      this.replies.push({ code: partial.code, lines: partial.lines, raw: partial.raw.join('\n') });
      this.#partial = undefined;
    } else {
      this.#partial = partial;
    }
  }

  #finish(): void {
    if (this.#pending.length > 0) {
      this.malformed.push(`connection closed inside a reply line: ${JSON.stringify(this.#pending.subarray(0, 200).toString('latin1'))}`);
      this.#pending = Buffer.alloc(0);
    }
    if (this.#partial) {
      this.malformed.push(`connection closed inside a multi-line reply: ${JSON.stringify(this.#partial.raw.join('\n').slice(0, 200))}`);
      this.#partial = undefined;
    }
  }

  #wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#waiters.add(done);
    });
  }

  #wake(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }
}
