// The one place that uses smtp-server beyond its documented options and
// handlers. Its type declarations name these members, but its documentation
// does not promise them, so a release may change any of them; going through
// this module, such an upgrade breaks here (and in its test), in one place.
// - connect(socket, { id }): the front door accepts and admits connections
//   itself (and does the implicit-TLS handshake), then hands each socket over
//   for its SMTP session, under a session id we chose, so the state we keep
//   per session is found again in the handlers (session.id is that id).
// - connections, and a connection's send() and close(): a session is told
//   421 and closed from outside its handlers (a command line that never ends,
//   too many commands, a stranger's time to log in, DATA taking too long,
//   shutdown). send() closes the connection after a 421 itself.
// - _armTimeout(socket) and _socket (private): the TLS handshake after
//   STARTTLS starts where smtp-server arms its idle timer on the new TLS
//   socket, and no event or option tells it otherwise (see
//   starttls-deadline.ts why that handshake needs its own deadline).
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { SMTPServer } from 'smtp-server';

/** smtp-server's connection object (its SMTPConnection). */
export type SmtpConnection = SMTPServer['connections'] extends Set<infer C> ? C : never;

/** Runs the SMTP session of a socket accepted elsewhere; its session.id is `id`. */
export function serveSocket(server: SMTPServer, socket: Socket, id: string): void {
  server.connect(socket, { id });
}

/** The connection of session `id`, until it closes. */
export function connectionOf(server: SMTPServer, id: string): SmtpConnection | undefined {
  return [...server.connections].find((c) => c.id === id);
}

/** Writes one reply on a connection; a 421 closes it once written. */
export function sendReply(connection: SmtpConnection, code: number, text: string): void {
  connection.send(code, text);
}

/** Closes the connection of session `sessionId` at once, whatever it is doing. */
export function closeSession(server: SMTPServer, sessionId: string): void {
  for (const connection of server.connections) if (connection.session?.id === sessionId) connection.close();
}

/** Tells every open session `code text` and closes it. */
export function closeAllSessions(server: SMTPServer, code: number, text: string): void {
  for (const connection of server.connections) {
    connection.send(code, text);
    connection.close();
  }
}

/**
 * Calls `begins` with the TLS socket of the STARTTLS upgrade of `connection`
 * as its handshake starts (before 'secure'), once per upgrade.
 */
export function onStartTlsHandshake(connection: SmtpConnection, begins: (socket: TLSSocket) => void): void {
  const arm = connection._armTimeout.bind(connection);
  connection._armTimeout = (socket = connection._socket) => {
    arm(socket);
    // Only the socket of an upgrade in progress: not yet the session's socket.
    if (!(socket instanceof TLSSocket) || socket === connection._socket || connection.secure) return;
    begins(socket);
  };
}
