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
// - SMTPStream's _feedDataStream (private): the same DATA reader, finding
//   the dots at line starts with a native search instead of a JavaScript
//   loop over every octet (see searchDotsNatively).
// - a connection's _createParser() and SMTPStream's _write (private): the
//   replies to a group of pipelined commands are written together (see
//   batchPipelinedReplies).
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';

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

/** smtp-server's own DATA reader, as it ships. */
export const smtpServerFeedDataStream = SMTPStream.prototype._feedDataStream;

const LONE_DOT_LINE = Buffer.from('.\r\n');
const DOT_AFTER_LF = Buffer.from('\n.');
const DOT = 0x2e;
const CR = 0x0d;
const LF = 0x0a;

/**
 * smtp-server's _feedDataStream, step for step, but for how it finds a dot
 * at the start of a line: it tests every octet in JavaScript, some 4 ns an
 * octet here (0.4 ms of the event loop for a 100 KiB message), where
 * Buffer.indexOf searches natively and stops only at line ends. What is a
 * dot at a line start, what ends DATA (only CRLF "." CRLF: RFC 5321 §4.1.1.4,
 * never a bare LF, which is what SMTP smuggling relies on), what is
 * unstuffed (RFC 5321 §4.5.2), the octets held back for the next chunk and
 * the byte counts are the library's; a test compares the two on the same
 * inputs, cut into chunks in every way. It also reads on past an escape dot
 * in the same call, where the library waits a turn of the event loop, and
 * hands a chunk's content on in one write, however many dots it unstuffed.
 */
export function feedDataStream(this: SMTPStream, input: Buffer, done: (err?: Error | null) => void): void {
  const dataStream = this._dataStream!;
  let chunk = input;
  if (this._lastBytes && this._lastBytes.length) {
    chunk = Buffer.concat([this._lastBytes, chunk], this._lastBytes.length + chunk.length);
    this._lastBytes = false;
  }
  // Only before any payload can a leading "." end DATA or be an escape.
  if (this._atDataStart && chunk.length >= 3 && chunk.subarray(0, 3).equals(LONE_DOT_LINE)) {
    this._endDataMode(false, chunk.subarray(3), done);
    return;
  }
  if (this._atDataStart && chunk.length >= 2 && chunk[0] === DOT && chunk[1] === DOT) {
    chunk = chunk.subarray(1);
    this._atDataStart = false;
  }
  // An escape dot cuts the chunk: the text before it is content, and the search goes on after it.
  // The pieces are kept as offsets and handed on joined, with the rest, in one write: a body of short
  // dot-stuffed lines costs neither a turn, nor a write, nor a Buffer a line.
  const len = chunk.length;
  /** Where the content not yet handed on begins: after the last escape dot. */
  let from = 0;
  /** The content before each escape dot, as [start, end) offsets into the chunk. */
  const pieces: number[] = [];
  /** Their octets, counted once with the rest (the escape dots are not content). */
  let counted = 0;
  // A dot at i (from + 2 <= i < len - 2) after a LF: the LF is at i - 1.
  for (let lf = chunk.indexOf(DOT_AFTER_LF, 1); lf >= 0 && lf < len - 3; lf = chunk.indexOf(DOT_AFTER_LF, lf + 1)) {
    const i = lf + 1;
    if (chunk[i - 2] === CR && chunk[i + 1] === CR && chunk[i + 2] === LF) {
      // CRLF "." CRLF. The CRLF before the dot ends the last line: it is content.
      this._countDataBytes(counted + i - from);
      if (pieces.length > 0 && dataStream.writable) dataStream.write(gather(chunk, pieces, 0, 0));
      this._endDataMode(chunk.subarray(from, i), chunk.subarray(i + 3), done);
      return;
    }
    if (chunk[i + 1] === DOT) {
      this._lastBytes = false;
      counted += i - from;
      pieces.push(from, i);
      from = i + 1;
    }
  }
  // The last 4 octets wait: with the next chunk they may be the start of CRLF "." CRLF.
  const held = Math.min(4, len - from);
  this._lastBytes = chunk.subarray(len - held);
  this._countDataBytes(counted + len - held - from);
  if (len - held === from && pieces.length === 0) return done();
  if (!dataStream.writable) return done();
  const content = pieces.length === 0 ? chunk.subarray(from, len - held) : gather(chunk, pieces, from, len - held);
  if (dataStream.write(content) || dataStream.destroyed) return done();
  // A stream that is destroyed never drains; it closes.
  const onDrain = () => {
    dataStream.removeListener('drain', onDrain);
    dataStream.removeListener('close', onDrain);
    done();
  };
  dataStream.once('drain', onDrain);
  dataStream.once('close', onDrain);
}

/** The octets of `chunk` in the ranges `pieces` (start, end, start, end, …) and then [from, to), in one Buffer. */
function gather(chunk: Buffer, pieces: number[], from: number, to: number): Buffer {
  let size = to - from;
  for (let k = 0; k < pieces.length; k += 2) size += pieces[k + 1]! - pieces[k]!;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (let k = 0; k < pieces.length; k += 2) at += chunk.copy(out, at, pieces[k], pieces[k + 1]);
  chunk.copy(out, at, from, to);
  return out;
}

/** Every SMTP session from now on reads DATA with feedDataStream. */
export function searchDotsNatively(): void {
  SMTPStream.prototype._feedDataStream = feedDataStream;
}

/** The connection each command parser reads for. */
const parserOwners = new WeakMap<SMTPStream, SMTPConnection>();
let batching = false;

/**
 * Every SMTP session from now on answers a group of pipelined commands in
 * one write: the replies are held while the parser works through the input
 * it has and sent together once it has used it all (RFC 2920 §3.1), so
 * MAIL, RCPT and DATA cost one system call and wake the client once, not
 * three times. A reply is never held waiting for the client, only while
 * input already received is read. STARTTLS retires the parser, which
 * smtp-server drains on the next turn: its 220 goes out then, before the
 * client can begin the handshake. A reply from outside the handlers (a 421)
 * goes out when the parser is done, or at once with the connection's end.
 */
export function batchPipelinedReplies(): void {
  if (batching) return;
  batching = true;
  const createParser = SMTPConnection.prototype._createParser;
  SMTPConnection.prototype._createParser = function (this: SMTPConnection): SMTPStream {
    const parser = createParser.call(this);
    parserOwners.set(parser, this);
    return parser;
  };
  const write = SMTPStream.prototype._write;
  SMTPStream.prototype._write = function (this: SMTPStream, chunk: Buffer, encoding: BufferEncoding | 'buffer', next: (err?: Error | null) => void): void {
    // The socket replies go to now; after STARTTLS it is the TLS socket.
    const socket = parserOwners.get(this)?._socket;
    if (!socket) return write.call(this, chunk, encoding, next);
    socket.cork();
    write.call(this, chunk, encoding, (err?: Error | null) => {
      socket.uncork();
      next(err);
    });
  };
}
