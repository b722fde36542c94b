// A deadline for the TLS handshake that follows STARTTLS (RFC 3207).
// smtp-server watches the socket being upgraded only with its idle timer
// (listen.socketTimeoutSeconds, 120 s by default), so a client that sends
// STARTTLS, reads 220 and then stays silent, or stalls halfway through the
// handshake, keeps its connection slot that long. On tlsPort the front door
// cuts the handshake off after listen.tlsHandshakeTimeoutSeconds; this gives
// the handshake after STARTTLS the same bound, counted from its start and
// extended by nothing.
//
// The handshake starts where smtp-server arms its idle timer on the new TLS
// socket, SMTPConnection._armTimeout(socket) (declared in its types, not
// documented): the one place this module reaches into smtp-server, guarded by
// the tests of this deadline. The TLS socket is destroyed from the top, as the
// front door does: tearing the plain socket down under a handshake in progress
// is not safe.
import { TLSSocket } from 'node:tls';
import type { SMTPServer } from 'smtp-server';

type Connection = SMTPServer['connections'] extends Set<infer C> ? C : never;

export function limitStartTlsHandshake(connection: Connection, timeoutMs: number, onTimeout: () => void): void {
  const arm = connection._armTimeout.bind(connection);
  connection._armTimeout = (socket = connection._socket) => {
    arm(socket);
    // Only the socket of an upgrade in progress: not yet the session's socket.
    if (!(socket instanceof TLSSocket) || socket === connection._socket || connection.secure) return;
    const deadline = setTimeout(() => {
      if (socket.destroyed) return;
      onTimeout();
      socket.destroy();
    }, timeoutMs);
    const done = () => clearTimeout(deadline);
    socket.once('secure', done);
    socket.once('close', done);
  };
}
