// One DNS exchange over TCP (RFC 1035 §4.2.2, RFC 7766): each message is
// preceded by its length in two octets. Updates go over TCP because a 2048-bit
// key's record with its TSIG does not fit the 512 octets of plain UDP.
import { connect } from 'node:net';
import { socketProblem } from '../socket-problem.ts';
import type { HostPort } from '../../common/host-port.ts';

/** The answer to `message`; rejects with a short reason on a connection error or after `timeoutMs`. */
export function exchangeTcp(server: HostPort, message: Buffer, timeoutMs: number): Promise<Buffer> {
  if (message.length > 0xffff) return Promise.reject(new Error(`a message of ${message.length} octets does not fit DNS over TCP`));
  return new Promise((resolve, reject) => {
    const socket = connect({ host: server.host, port: server.port });
    let received = Buffer.alloc(0);
    const finish = (err: Error | null, answer?: Buffer) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(answer!);
    };
    const timer = setTimeout(() => finish(new Error(`no answer within ${timeoutMs / 1000}s`)), timeoutMs);
    socket.on('connect', () => {
      const length = Buffer.alloc(2);
      length.writeUInt16BE(message.length);
      socket.write(Buffer.concat([length, message]));
    });
    socket.on('data', (chunk) => {
      received = Buffer.concat([received, chunk]);
      if (received.length >= 2 && received.length >= 2 + received.readUInt16BE(0)) finish(null, received.subarray(2, 2 + received.readUInt16BE(0)));
    });
    socket.on('error', (err) => finish(new Error(socketProblem(err))));
    socket.on('end', () => finish(new Error('the server closed the connection without an answer')));
  });
}
