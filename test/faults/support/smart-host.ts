// A smart host whose misbehaviour a fault case sets and changes while the
// relay talks to it: written by hand, not with smtp-server, because its faults
// (a reset after the final dot, a greeting never sent, replies trickled one
// byte a second, 8BITMIME announced or not) live below what a server library
// lets one change. Everything it takes is kept, by Message-ID.
import { createServer, type Server, type Socket } from 'node:net';

export type HostBehaviour =
  /** Takes every message. */
  | 'accept'
  /** 451 at MAIL: keeps the relay's mail queued. */
  | 'defer'
  /** Reads the whole message, then resets the connection before any reply; the message is not kept. */
  | 'reset-after-dot'
  /** Accepts the TCP connection and never sends a greeting. */
  | 'silent'
  /** Greets, then answers EHLO with 421 and closes. */
  | 'greet-421'
  /** Takes messages, but writes every reply one byte a second. */
  | 'slow';

export interface HostMessage {
  messageId: string;
  raw: Buffer;
  /** The BODY= parameter of MAIL FROM, upper case, or '' when absent. */
  body: string;
}

export interface SmartHost {
  port: number;
  behaviour: HostBehaviour;
  /** Whether EHLO announces 8BITMIME; read at every EHLO. */
  eightBitMime: boolean;
  received: HostMessage[];
  /** Connections opened so far, and the number of resets, unanswered greetings and 421s given. */
  counts: { connections: number; faults: number };
  /** Resolves once `check()` holds (checked at each message and each connection), or rejects after `ms`. */
  until(check: () => boolean, ms: number, what: string): Promise<void>;
  /** Closes every open connection (a host restarting). */
  dropAll(): void;
  close(): Promise<void>;
}

const CRLF = '\r\n';

export async function startSmartHost(host = '127.0.0.1', behaviour: HostBehaviour = 'accept'): Promise<SmartHost> {
  const sockets = new Set<Socket>();
  const waiters = new Set<() => void>();
  const notify = () => [...waiters].forEach((w) => w());
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    state.counts.connections++;
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    serveSession(socket, state, notify);
    notify();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const state: SmartHost = {
    port: (server.address() as { port: number }).port,
    behaviour,
    eightBitMime: true,
    received: [],
    counts: { connections: 0, faults: 0 },
    until(check, ms, what) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => done(new Error(`smart host: timed out after ${ms} ms waiting for ${what}`)), ms);
        const probe = () => {
          if (check()) done();
        };
        const done = (err?: Error) => {
          clearTimeout(timer);
          waiters.delete(probe);
          if (err) reject(err);
          else resolve();
        };
        waiters.add(probe);
        probe();
      });
    },
    dropAll() {
      for (const s of sockets) s.destroy();
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
  return state;
}

function serveSession(socket: Socket, host: SmartHost, notify: () => void): void {
  const slow = host.behaviour === 'slow';
  if (slow) host.counts.faults++;
  let pendingOut = '';
  let ticker: NodeJS.Timeout | undefined;
  const reply = (text: string) => {
    if (!slow) return void socket.write(text + CRLF);
    // One byte a second, as a host on a dying link or a tarpit does.
    pendingOut += text + CRLF;
    ticker ??= setInterval(() => {
      if (pendingOut === '' || socket.destroyed) return;
      socket.write(pendingOut[0]!);
      pendingOut = pendingOut.slice(1);
    }, 1000);
  };
  socket.once('close', () => clearInterval(ticker));
  if (host.behaviour === 'silent') {
    host.counts.faults++;
    return; // holds the connection open and says nothing
  }
  reply('220 smarthost.test ESMTP faults');

  let input = '';
  let inData = false;
  let data = '';
  let body = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => {
    input += chunk;
    for (;;) {
      if (inData) {
        const end = input.indexOf(`${CRLF}.${CRLF}`);
        if (end < 0) {
          // Keep the last bytes: the terminator may straddle two chunks.
          const keep = Math.max(0, input.length - 4);
          data += input.slice(0, keep);
          input = input.slice(keep);
          return;
        }
        const text = (data + input.slice(0, end) + CRLF).slice(2); // without the CRLF put before the first line
        input = input.slice(end + 5);
        data = '';
        inData = false;
        if (host.behaviour === 'reset-after-dot') {
          host.counts.faults++;
          notify();
          socket.resetAndDestroy();
          return;
        }
        const raw = Buffer.from(text.replace(/^\.\./gm, '.'), 'latin1');
        const messageId = /^Message-ID:\s*<([^>]+)>/im.exec(text.split(`${CRLF}${CRLF}`)[0]!)?.[1] ?? '(none)';
        host.received.push({ messageId, raw, body });
        reply('250 2.0.0 Ok: queued');
        notify();
        continue;
      }
      const at = input.indexOf(CRLF);
      if (at < 0) return;
      const line = input.slice(0, at);
      input = input.slice(at + 2);
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === 'EHLO' || verb === 'HELO') {
        if (host.behaviour === 'greet-421') {
          host.counts.faults++;
          reply('421 4.3.2 smarthost.test shutting down');
          socket.end();
          notify();
          return;
        }
        const extensions = ['PIPELINING', 'SIZE 104857600', ...(host.eightBitMime ? ['8BITMIME'] : []), 'ENHANCEDSTATUSCODES'];
        reply(['smarthost.test', ...extensions].map((e, i, all) => `250${i === all.length - 1 ? ' ' : '-'}${e}`).join(CRLF));
      } else if (verb === 'MAIL') {
        body = /\sBODY=(\S+)/i.exec(line)?.[1]?.toUpperCase() ?? '';
        reply(host.behaviour === 'defer' ? '451 4.3.0 not now, try later' : '250 2.1.0 Ok');
      } else if (verb === 'RCPT') {
        reply('250 2.1.5 Ok');
      } else if (verb === 'DATA') {
        inData = true;
        input = CRLF + input; // the line before the first one, so that a lone "." first is found too
        reply('354 End data with <CR><LF>.<CR><LF>');
      } else if (verb === 'RSET' || verb === 'NOOP') {
        reply('250 2.0.0 Ok');
      } else if (verb === 'QUIT') {
        reply('221 2.0.0 Bye');
        socket.end();
        return;
      } else {
        reply('502 5.5.2 Command not recognised');
      }
    }
  });
}
