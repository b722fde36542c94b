// A deadline for the TLS handshake that follows STARTTLS (RFC 3207).
// smtp-server watches the socket being upgraded only with its idle timer
// (listen.socketTimeoutSeconds, 120 s by default), so a client that sends
// STARTTLS, reads 220 and then stays silent, or stalls halfway through the
// handshake, keeps its connection slot that long. On tlsPort the front door
// cuts the handshake off after listen.tlsHandshakeTimeoutSeconds; this gives
// the handshake after STARTTLS the same bound, counted from its start and
// extended by nothing. The TLS socket is destroyed from the top, as the
// front door does: tearing the plain socket down under a handshake in
// progress is not safe.
import { onStartTlsHandshake, type SmtpConnection } from './smtp-server-internals.ts';

export function limitStartTlsHandshake(connection: SmtpConnection, timeoutMs: number, onTimeout: () => void): void {
  onStartTlsHandshake(connection, (socket) => {
    const deadline = setTimeout(() => {
      if (socket.destroyed) return;
      onTimeout();
      socket.destroy();
    }, timeoutMs);
    const done = () => clearTimeout(deadline);
    socket.once('secure', done);
    socket.once('close', done);
  });
}
