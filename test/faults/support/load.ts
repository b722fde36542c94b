// A bounded load: `count` messages over `sessions` SMTP sessions at once, each
// message with its own Message-ID, and the final reply each one got. A session
// the relay drops is opened again (a bounded number of times without a final
// reply in between), as a sending MTA would; a message without a final reply
// counts as not accepted.
import { connect, type Socket } from 'node:net';

export interface Outcome {
  id: string;
  /** The reply to the final dot (or to the command that ended the transaction); '' if none came. */
  reply: string;
}

export interface LoadOptions {
  port: number;
  /** Prefix of the Message-IDs, unique per load. */
  tag: string;
  count: number;
  sessions: number;
  host?: string;
  /** 8-bit UTF-8 body (BODY=8BITMIME) instead of ASCII. */
  eightBit?: boolean;
  /** Longest wait for one reply. */
  replyMs?: number;
  /** Called at each final reply, with the number of final replies so far. */
  onReply?: (replies: number) => void;
}

const RECONNECTS = 3;

export const accepted = (outcomes: Outcome[]): string[] => outcomes.filter((o) => o.reply.startsWith('250')).map((o) => o.id);

/** Counts of the reply codes, e.g. {"250": 47, "452": 3}; "none" for no reply. */
export function replyCounts(outcomes: Outcome[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const o of outcomes) {
    const code = o.reply.slice(0, 3) || 'none';
    counts[code] = (counts[code] ?? 0) + 1;
  }
  return counts;
}

export function messageText(id: string, eightBit: boolean): string {
  const body = eightBit ? 'Grüße aus der Fehlerprobe: Ärger, Öl, Übermut.\r\n' : 'A message of the fault suite.\r\n';
  return [
    'From: Load <load@example.com>',
    'To: <rcpt@example.net>',
    `Subject: fault load ${id}`,
    `Message-ID: <${id}>`,
    `Date: ${new Date().toUTCString().replace('GMT', '+0000')}`,
    'MIME-Version: 1.0',
    `Content-Type: text/plain; charset=${eightBit ? 'utf-8' : 'us-ascii'}`,
    `Content-Transfer-Encoding: ${eightBit ? '8bit' : '7bit'}`,
    '',
    body.repeat(20),
  ].join('\r\n');
}

export async function runLoad(options: LoadOptions): Promise<Outcome[]> {
  const ids = Array.from({ length: options.count }, (_, i) => `${options.tag}.${i + 1}@load.test`);
  const outcomes = new Map<string, string>();
  let next = 0;
  const take = () => (next < ids.length ? ids[next++] : undefined);
  await Promise.all(
    Array.from({ length: Math.min(options.sessions, options.count) }, async () => {
      let reconnects = 0;
      let id = take();
      while (id !== undefined) {
        const client = await SmtpClient.open(options.host ?? '127.0.0.1', options.port, options.replyMs ?? 30_000);
        try {
          const hello = await client.command(null);
          if (hello.startsWith('220')) {
            const ehlo = await client.command('EHLO load.test');
            while (id !== undefined && ehlo.startsWith('250') && !client.closed) {
              const reply = await client.transaction(id, options.eightBit ?? false);
              outcomes.set(id, reply);
              options.onReply?.(outcomes.size);
              reconnects = 0; // a relay that answers is not one to give up on
              if (reply === '' || reply.startsWith('421')) break;
              id = take();
            }
            if (id !== undefined && outcomes.has(id)) id = take();
          }
        } finally {
          client.quit();
        }
        if (id !== undefined && ++reconnects > RECONNECTS) {
          // This session gives up: what it still holds counts as not accepted.
          outcomes.set(id, outcomes.get(id) ?? '');
          id = take();
          reconnects = 0;
        }
      }
    }),
  );
  return ids.map((id) => ({ id, reply: outcomes.get(id) ?? '' }));
}

class SmtpClient {
  private buffer = '';
  private lines: string[] = [];
  private waiter: (() => void) | null = null;
  closed = false;
  private readonly socket: Socket;
  private readonly replyMs: number;

  private constructor(socket: Socket, replyMs: number) {
    this.socket = socket;
    this.replyMs = replyMs;
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      let at: number;
      while ((at = this.buffer.indexOf('\r\n')) >= 0) {
        this.lines.push(this.buffer.slice(0, at));
        this.buffer = this.buffer.slice(at + 2);
      }
      this.waiter?.();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
  }

  static open(host: string, port: number, replyMs: number): Promise<SmtpClient> {
    return new Promise((resolve) => {
      const socket = connect(port, host);
      const client = new SmtpClient(socket, replyMs);
      socket.once('connect', () => resolve(client));
      socket.once('error', () => resolve(client)); // closed: its first reply is ''
    });
  }

  /** Sends `line` (none for the greeting) and reads one reply, multi-line joined by \n; '' if none came in time. */
  async command(line: string | null): Promise<string> {
    if (line !== null && !this.closed) this.socket.write(line + '\r\n');
    return this.reply();
  }

  private async reply(): Promise<string> {
    const until = Date.now() + this.replyMs;
    const taken: string[] = [];
    for (;;) {
      while (this.lines.length > 0) {
        const line = this.lines.shift()!;
        taken.push(line);
        if (!/^\d{3}-/.test(line)) return taken.join('\n');
      }
      if (this.closed || Date.now() >= until) return '';
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, until - Date.now());
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = null;
    }
  }

  /** One message; the reply that ended it. */
  async transaction(id: string, eightBit: boolean): Promise<string> {
    const mail = await this.command(`MAIL FROM:<load@example.com>${eightBit ? ' BODY=8BITMIME' : ''}`);
    if (!mail.startsWith('250')) return mail;
    const rcpt = await this.command('RCPT TO:<rcpt@example.net>');
    if (!rcpt.startsWith('250')) return this.rset(rcpt);
    const data = await this.command('DATA');
    if (!data.startsWith('354')) return this.rset(data);
    const text = messageText(id, eightBit).replace(/^\./gm, '..');
    this.socket.write(Buffer.from(`${text}.\r\n`, 'utf8'));
    return this.reply();
  }

  private async rset(reply: string): Promise<string> {
    if (reply !== '') await this.command('RSET');
    return reply;
  }

  quit(): void {
    if (this.closed) return;
    this.socket.end('QUIT\r\n');
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }
}
