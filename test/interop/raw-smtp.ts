// A minimal SMTP client that sends a message's bytes as they are. nodemailer
// (the `send` helper) turns bare CR and bare LF into CRLF and adds a final
// CRLF before the relay ever sees them; this one only does what SMTP itself
// requires: dot-stuffing (RFC 5321 §4.5.2) and the CRLF . CRLF terminator.
import { connect, type Socket } from 'node:net';
import type { SendResult } from '../helpers/relay-harness.ts';

export interface RawSendOptions {
  port: number;
  host?: string;
  from: string;
  to: string[];
  raw: Buffer;
}

/** The DATA payload: a dot doubled at the start and after every LF, then the terminator. */
export function dataPayload(raw: Buffer): Buffer {
  const out: Buffer[] = [];
  let last = 0;
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x2e && (i === 0 || raw[i - 1] === 0x0a)) {
      out.push(raw.subarray(last, i), Buffer.from('.'));
      last = i;
    }
  }
  out.push(raw.subarray(last));
  let body = Buffer.concat(out);
  // SMTP data ends with CRLF; a message ending in a bare LF gets its CR (no extra empty line).
  if (body.length > 0 && body[body.length - 1] === 0x0a && body[body.length - 2] !== 0x0d) body = Buffer.concat([body.subarray(0, -1), Buffer.from('\r\n')]);
  const ending = body.length === 0 || body.subarray(-2).equals(Buffer.from('\r\n')) ? '.\r\n' : '\r\n.\r\n';
  return Buffer.concat([body, Buffer.from(ending)]);
}

class ReplyReader {
  private buffer = '';
  private waiting: { resolve: (reply: { code: number; text: string }) => void; reject: (err: Error) => void } | null = null;
  private failure: Error | null = null;

  constructor(socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer += chunk.toString('utf8');
      this.pump();
    });
    const fail = (err: Error) => {
      this.failure ??= err;
      const waiting = this.waiting;
      this.waiting = null;
      waiting?.reject(this.failure);
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('connection closed')));
  }

  private pump(): void {
    if (!this.waiting) return;
    const lines = this.buffer.split('\r\n');
    for (let i = 0; i < lines.length - 1; i++) {
      if (/^\d{3} /.test(lines[i]!) || /^\d{3}$/.test(lines[i]!)) {
        const reply = lines.slice(0, i + 1);
        this.buffer = lines.slice(i + 1).join('\r\n');
        const { resolve } = this.waiting;
        this.waiting = null;
        resolve({ code: Number(reply[i]!.slice(0, 3)), text: reply.join('\n') });
        return;
      }
    }
  }

  next(timeoutMs = 120_000): Promise<{ code: number; text: string }> {
    return new Promise((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      const timer = setTimeout(() => reject(new Error('timed out waiting for an SMTP reply')), timeoutMs);
      this.waiting = {
        resolve: (reply) => {
          clearTimeout(timer);
          resolve(reply);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      this.pump();
    });
  }
}

/** One message over a fresh connection; resolves with the reply to DATA (or the first refusal). */
export async function sendRaw(options: RawSendOptions): Promise<SendResult> {
  const socket = connect(options.port, options.host ?? '127.0.0.1');
  const replies = new ReplyReader(socket);
  const command = async (line: string, expect: number): Promise<{ code: number; text: string } | null> => {
    socket.write(Buffer.from(line + '\r\n', 'utf8'));
    const reply = await replies.next();
    return Math.floor(reply.code / 100) === expect ? null : reply;
  };
  const refused = (reply: { code: number; text: string }): SendResult => ({ ok: false, code: reply.code, response: reply.text });
  try {
    const greeting = await replies.next();
    if (greeting.code !== 220) return refused(greeting);
    socket.write('EHLO client.test\r\n');
    const ehlo = await replies.next();
    if (ehlo.code !== 250) return refused(ehlo);
    const utf8 = /[^\x00-\x7f]/.test(options.from + options.to.join(''));
    const eightBit = options.raw.some((b) => b >= 0x80);
    const params = [utf8 && /SMTPUTF8/i.test(ehlo.text) ? ' SMTPUTF8' : '', eightBit && /8BITMIME/i.test(ehlo.text) ? ' BODY=8BITMIME' : ''].join('');
    const mail = await command(`MAIL FROM:<${options.from}>${params}`, 2);
    if (mail) return refused(mail);
    for (const rcpt of options.to) {
      const r = await command(`RCPT TO:<${rcpt}>`, 2);
      if (r) return refused(r);
    }
    const data = await command('DATA', 3);
    if (data) return refused(data);
    socket.write(dataPayload(options.raw));
    const final = await replies.next();
    socket.end('QUIT\r\n');
    return final.code < 400 ? { ok: true, response: final.text } : refused(final);
  } finally {
    socket.destroySoon();
  }
}
