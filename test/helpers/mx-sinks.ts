// Receiving mail hosts for direct-delivery tests: smtp-server sinks on
// loopback, one per 127.0.0.x address, all on the same port, so one `port`
// setting of the upstream reaches every one of them. The first binds port 0;
// the others take the same port on their own address. Should another test
// hold that port on one of them, all start again on a new one (a bounded
// number of times).
import type { Socket } from 'node:net';
import { SMTPServer, type SMTPServerAddress, type SMTPServerOptions } from 'smtp-server';

export interface MxReceived {
  from: string;
  to: string[];
  raw: Buffer;
  /** Whether the session was encrypted (STARTTLS). */
  secure: boolean;
  /** Whether MAIL FROM carried SMTPUTF8. */
  smtpUtf8: boolean;
  /** Parameters of MAIL FROM and of each RCPT TO (RET, ENVID; NOTIFY, ORCPT). */
  mailArgs: Record<string, unknown>;
  rcptArgs: Record<string, unknown>[];
}

export interface SinkSpec {
  /** 127.0.0.x; avoid 127.0.0.1, where other tests bind. */
  address: string;
  /** smtp-server options: a name, a TLS key and certificate, hidden extensions … */
  options?: Partial<SMTPServerOptions>;
  /** Replies at RCPT TO by recipient. */
  rcpt?: Record<string, { code: number; text: string }>;
}

export interface MxSink {
  address: string;
  received: MxReceived[];
  /** Every recipient offered at RCPT TO, accepted or not. */
  offered: string[];
  connections: number;
  /** The most connections it had open at once. */
  peakConnections: number;
}

export interface MxSinks {
  port: number;
  sinks: Map<string, MxSink>;
  close(): Promise<void>;
}

const BIND_TRIES = 10;

const failure = (code: number, text: string) => Object.assign(new Error(text), { responseCode: code });

export async function startMxSinks(specs: SinkSpec[]): Promise<MxSinks> {
  for (let attempt = 1; ; attempt++) {
    const started: { server: SMTPServer; sockets: Set<Socket> }[] = [];
    const sinks = new Map<string, MxSink>();
    let port = 0;
    try {
      for (const spec of specs) {
        const sink: MxSink = { address: spec.address, received: [], offered: [], connections: 0, peakConnections: 0 };
        const { server, sockets } = createSink(spec, sink);
        started.push({ server, sockets });
        await new Promise<void>((resolve, reject) => {
          server.server.once('error', reject);
          server.listen(port, spec.address, () => {
            server.server.off('error', reject);
            resolve();
          });
        });
        port = (server.server.address() as { port: number }).port;
        sinks.set(spec.address, sink);
      }
      const close = async (): Promise<void> => {
        await Promise.all(
          started.map(
            ({ server, sockets }) =>
              new Promise<void>((resolve) => {
                sockets.forEach((s) => s.destroy());
                server.close(() => resolve());
              }),
          ),
        );
      };
      return { port, sinks, close };
    } catch (err) {
      await Promise.all(started.map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve()))));
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= BIND_TRIES) throw err;
    }
  }
}

function createSink(spec: SinkSpec, sink: MxSink): { server: SMTPServer; sockets: Set<Socket> } {
  const sockets = new Set<Socket>();
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: spec.options?.key ? ['AUTH'] : ['STARTTLS', 'AUTH'],
    closeTimeout: 200,
    logger: false,
    // Its own name: smtp-server's default, the machine's host name, is one of the relay's own names (a loop).
    name: `mx-${spec.address.replace(/\W/g, '-')}.test`,
    hideDSN: false, // announces DSN, so the relay passes RET, ENVID, NOTIFY and ORCPT on
    onRcptTo(address: SMTPServerAddress, _session, callback) {
      sink.offered.push(address.address);
      const answer = spec.rcpt?.[address.address];
      callback(answer ? failure(answer.code, answer.text) : undefined);
    },
    onData(stream, session, callback) {
      const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
      const to = session.envelope.rcptTo.map((r) => r.address);
      const smtpUtf8 = Boolean((session.envelope as { smtpUtf8?: boolean }).smtpUtf8);
      const mailArgs = (session.envelope.mailFrom && session.envelope.mailFrom.args) || {};
      const rcptArgs = session.envelope.rcptTo.map((r) => r.args || {});
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        sink.received.push({ from, to, raw: Buffer.concat(chunks), secure: session.secure, smtpUtf8, mailArgs, rcptArgs });
        callback(null, `Ok: queued at ${spec.address}`);
      });
    },
    ...spec.options,
  });
  server.on('error', () => {}); // a client that gives up on a TLS handshake is what some tests want
  server.server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    sink.connections++;
    sink.peakConnections = Math.max(sink.peakConnections, sockets.size);
    socket.once('close', () => sockets.delete(socket));
  });
  return { server, sockets };
}
