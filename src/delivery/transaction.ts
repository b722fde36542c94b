// One mail transaction on an open SMTP connection, for both the smart host
// and direct delivery: the message's octets go out as they are, read chunk
// by chunk, never composed again. A host announcing PIPELINING (RFC 2920)
// gets the envelope and DATA in one write, or BDAT (RFC 3030) when it
// announces CHUNKING, which needs no dot-stuffing at all (up to a size where
// a refused envelope would waste the transfer); any other host
// gets nodemailer's one command at a time.
import type { Socket } from 'node:net';
import { hasBareLineEnd } from '../message/lines.ts';
import { octetStream, type Octets } from '../message/octets.ts';
import { announcedExtensions, RCPT_DSN, sendPipelined, type PipelinedEnvelope, type SMTPConnection } from '../smtp/nodemailer-internals.ts';
import type { SendError } from './failure-reply.ts';
import type { Envelope } from './upstream.ts';

export interface TransactionMessage {
  octets: Octets;
  /** Ask for BODY=8BITMIME (RFC 6152), where the host announced it. */
  eightBit: boolean;
}

export interface TransactionInfo {
  accepted: string[];
  /** The recipients refused at RCPT TO, each error naming its `recipient`. */
  rejectedErrors: SendError[];
  /** The reply that ended the transaction, and the command it answered. */
  response: string;
  command: 'DATA' | 'BDAT';
}

export type TransactionOutcome =
  | { ok: true; info: TransactionInfo }
  /**
   * `err.rejectedErrors`: every recipient was refused. `unanswered`: the
   * connection failed before the host answered anything of the transaction
   * (one it had closed meanwhile), so it cannot have taken the message.
   */
  | { ok: false; err: SendError; unanswered: boolean };

/**
 * BDAT goes out behind MAIL and RCPT without waiting for their replies (RFC
 * 3030 §4.2), so a refused envelope wastes the whole body: a larger message
 * goes by DATA, whose text waits for the 354 that follows accepted recipients.
 */
export const PIPELINED_BDAT_MAX = 1024 * 1024;

/** `envelope.to`: the addresses as RCPT TO names them. Never rejects. */
export function sendTransaction(connection: SMTPConnection, envelope: Envelope, message: TransactionMessage): Promise<TransactionOutcome> {
  const announced = announcedExtensions(connection);
  const { dsn } = envelope;
  const sent: PipelinedEnvelope = {
    from: envelope.from,
    to: envelope.to,
    size: message.octets.size,
    use8BitMime: message.eightBit,
    ...(dsn ? { dsn: { ret: dsn.ret, envid: dsn.envid }, [RCPT_DSN]: dsn.recipients } : {}),
  };
  return new Promise((resolve) => {
    type Reported = { accepted: string[]; rejectedErrors?: Error[]; response: string } | undefined;
    const done = (command: TransactionInfo['command']) => (err: Error | null, info: Reported, answered: boolean) => {
      if (err || !info) return resolve({ ok: false, err: (err ?? new Error('no reply')) as SendError, unanswered: !answered });
      const rejectedErrors = (info.rejectedErrors ?? []) as SendError[];
      resolve({ ok: true, info: { accepted: info.accepted, rejectedErrors, response: info.response, command } });
    };
    if (!announced.includes('PIPELINING')) {
      // Whether the host answered anything is not told here: taken as answered, nothing is sent twice.
      const reported = (err: Error | null, info?: Reported): void => done('DATA')(err, info, true);
      connection.send(sent as never, octetStream(message.octets), reported as never);
      return;
    }
    const chunked = announced.includes('CHUNKING') && message.octets.size <= PIPELINED_BDAT_MAX;
    const write = (socket: Socket): Promise<void> => (chunked ? writeOctets(socket, message.octets) : writeDotStuffed(socket, message.octets));
    sendPipelined(connection, sent, chunked, write, done(chunked ? 'BDAT' : 'DATA'));
  });
}

/**
 * BDAT's chunk: the octets as they are. Octets held in memory (a message of
 * up to 128 KiB) go in one write, whatever the parts they are made of.
 */
async function writeOctets(socket: Socket, octets: Octets): Promise<void> {
  if (octets.held) return written(socket, octets.held);
  for await (const chunk of octets.chunks()) await written(socket, [chunk]);
}

/** DATA's text: dot-stuffed and ended (RFC 5321 §4.5.2); in one write when held in memory. */
async function writeDotStuffed(socket: Socket, octets: Octets): Promise<void> {
  const stuffing = new DotStuffing();
  if (octets.held) return written(socket, [...octets.held.flatMap((part) => stuffing.push(part)), stuffing.end()]);
  for await (const chunk of octets.chunks()) await written(socket, stuffing.push(chunk));
  await written(socket, [stuffing.end()]);
}

/**
 * Resolves once the socket has taken `parts`, written together (one system
 * call while the socket takes them): a chunk of the octets is only valid
 * until the next is read (a file is read into one buffer), so the next is not
 * read before this one is gone. Waiting also keeps the socket's buffer small,
 * whatever the size of the message.
 */
function written(socket: Socket, parts: readonly Buffer[]): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.destroyed) return reject(new Error('the connection closed while the message was sent'));
    if (parts.length === 0) return resolve();
    socket.cork();
    parts.forEach((part, at) => {
      socket.write(part, at < parts.length - 1 ? undefined : (err) => (err ? reject(err) : resolve()));
    });
    socket.uncork();
  });
}

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const INSERT_CR = Buffer.from('\r');
const INSERT_LF = Buffer.from('\n');
const INSERT_DOT = Buffer.from('.');
const DOT_AFTER_LF = Buffer.from('\n.');

/**
 * The text of DATA, chunk by chunk: every line end made CRLF (a bare CR or
 * LF too, so that no receiver can read an end of data the relay did not
 * write: "SMTP smuggling"), a dot that starts a line doubled, ".\r\n" after
 * the last line. Line ends are found with indexOf, so a chunk without a dot
 * at a line start passes in one piece, in place.
 */
export class DotStuffing {
  /** The last octet written; the data starts a line. */
  #last = LF;

  /** The chunk as it is sent: pieces of it, and what goes between them. */
  push(chunk: Buffer): Buffer[] {
    const length = chunk.length;
    if (length === 0) return [];
    // What the spool holds: CRLF throughout. Then only the dots need finding, natively.
    if (this.#last !== CR && !hasBareLineEnd(chunk)) return this.#stuffDots(chunk);
    const out: Buffer[] = [];
    let from = 0;
    const insert = (at: number, what: Buffer): void => {
      if (at > from) out.push(chunk.subarray(from, at));
      out.push(what);
      from = at;
    };
    /** A line starts at `at` (known to be in the chunk): a dot there is doubled. */
    const lineStart = (at: number): void => {
      if (chunk[at] === DOT) insert(at, INSERT_DOT);
    };
    let at = 0;
    if (this.#last === CR) {
      if (chunk[0] === LF) {
        at = 1;
        if (length > 1) lineStart(1);
      } else {
        insert(0, INSERT_LF);
        lineStart(0);
      }
    } else if (this.#last === LF) lineStart(0);
    let nextCr = chunk.indexOf(CR, at);
    let nextLf = chunk.indexOf(LF, at);
    while (nextCr >= 0 || nextLf >= 0) {
      if (nextCr >= 0 && (nextLf < 0 || nextCr < nextLf)) {
        const after = nextCr + 1;
        if (after === length) break; // the next chunk says whether an LF follows
        if (chunk[after] === LF) {
          at = after + 1;
          nextLf = chunk.indexOf(LF, at);
          if (at < length) lineStart(at);
        } else {
          insert(after, INSERT_LF);
          lineStart(after);
          at = after;
        }
        nextCr = chunk.indexOf(CR, at);
      } else {
        insert(nextLf, INSERT_CR);
        at = nextLf + 1;
        if (at < length) lineStart(at);
        nextLf = chunk.indexOf(LF, at);
      }
    }
    out.push(from === 0 ? chunk : chunk.subarray(from));
    this.#last = chunk[length - 1]!;
    return out;
  }

  /** push() for a chunk whose line ends are all CRLF, the one before it complete. */
  #stuffDots(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    if (this.#last === LF && chunk[0] === DOT) out.push(INSERT_DOT);
    let from = 0;
    for (let lf = chunk.indexOf(DOT_AFTER_LF); lf >= 0; lf = chunk.indexOf(DOT_AFTER_LF, lf + 2)) {
      out.push(chunk.subarray(from, lf + 1), INSERT_DOT);
      from = lf + 1;
    }
    out.push(from === 0 ? chunk : chunk.subarray(from));
    this.#last = chunk[chunk.length - 1]!;
    return out;
  }

  /** What ends the data. */
  end(): Buffer {
    return Buffer.from(this.#last === LF ? '.\r\n' : this.#last === CR ? '\n.\r\n' : '\r\n.\r\n');
  }
}
