// One DNS exchange over TCP (RFC 1035 §4.2.2, RFC 7766): each message is
// preceded by its length in two octets. Queries come here when the UDP answer
// was truncated; updates always do, as a 2048-bit key's record with its TSIG
// does not fit the 512 octets of plain UDP.
import { connect } from 'node:net';
import { socketProblem } from './socket-problem.ts';
import type { HostPort } from '../common/host-port.ts';

/** Why no answer came: the caller words it for its own reader. */
export class TcpExchangeError extends Error {
  readonly kind: 'timeout' | 'socket' | 'closed';
  /** The socket's own error, for kind 'socket'. */
  readonly socketError: NodeJS.ErrnoException | undefined;
  constructor(kind: TcpExchangeError['kind'], message: string, socketError?: NodeJS.ErrnoException) {
    super(message);
    this.kind = kind;
    this.socketError = socketError;
  }
}

/** The answer to `message`, as the server sent it; rejects with a TcpExchangeError (a short reason) on a connection error or after `timeoutMs`. */
export function exchangeTcp(server: HostPort, message: Buffer, timeoutMs: number): Promise<Buffer> {
  if (message.length > 0xffff) return Promise.reject(new Error(`a message of ${message.length} octets does not fit DNS over TCP`));
  return new Promise((resolve, reject) => {
    const socket = connect({ host: server.host, port: server.port });
    let received = Buffer.alloc(0);
    let settled = false;
    const finish = (result: Error | Buffer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    const timer = setTimeout(() => finish(new TcpExchangeError('timeout', `no answer within ${timeoutMs / 1000}s`)), timeoutMs);
    socket.on('connect', () => {
      const length = Buffer.alloc(2);
      length.writeUInt16BE(message.length);
      socket.write(Buffer.concat([length, message]));
    });
    socket.on('data', (chunk) => {
      received = Buffer.concat([received, chunk]);
      if (received.length >= 2 && received.length >= 2 + received.readUInt16BE(0)) finish(received.subarray(2, 2 + received.readUInt16BE(0)));
    });
    socket.on('error', (err) => finish(new TcpExchangeError('socket', socketProblem(err), err)));
    socket.on('end', () => finish(new TcpExchangeError('closed', 'the server closed the connection without an answer')));
  });
}
