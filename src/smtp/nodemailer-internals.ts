// The one place that reaches into nodemailer beyond its documented API:
// - its quoted-printable encoder and two MIME helpers (exported by its
//   package.json but undocumented), which normalization uses. Their own
//   packages write other octets: libqp and libmime's encodeWord escape a
//   hyphen that starts a line or word ("=2D"), and libmime's
//   parseHeaderValue decodes RFC 2231 continuations and drops a backslash
//   outside quotes, where nodemailer's copies do not. Taking them would
//   change the messages we sign (base64 is libbase64's: its output is the same);
// - its SMTP client class, and the EHLO extensions a connection parsed (a
//   private field), which delivery uses to learn what the upstream takes;
//   CHUNKING, which it does not read, is added to them;
// - a connection's socket (a private field), whose TLS state direct
//   delivery records;
// - the method that writes RCPT TO's DSN parameters (private), which takes
//   one NOTIFY and ORCPT for the whole envelope: it is wrapped so that each
//   recipient gets its own (RFC 3461 §4.1, §4.2), and one transaction serves
//   recipients whose parameters differ.
// - the client's command queue and reply handlers (private), so that a
//   transaction is written in one go (PIPELINING, BDAT) with the message's
//   octets as they are, its replies read as nodemailer's send() reads them.
// A nodemailer release may change any of these without notice; going through
// this module, such an upgrade breaks here (and in its test), in one place.
import { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import MimeNode from 'nodemailer/lib/mime-node';
import { encodeXText } from 'nodemailer/lib/shared';
import SMTPConnection from 'nodemailer/lib/smtp-connection';

export { encode as qpEncode, wrap as qpWrap } from 'nodemailer/lib/qp';
export { encodeWord, parseHeaderValue } from 'nodemailer/lib/mime-funcs';
export { SMTPConnection };

interface WithExtensions {
  /** Filled from the last EHLO reply (after STARTTLS, when TLS was started). */
  _supportedExtensions?: string[];
}

/** The extensions (8BITMIME, SMTPUTF8, …) a connected SMTPConnection saw announced. */
export function announcedExtensions(connection: SMTPConnection): string[] {
  return [...((connection as unknown as WithExtensions)._supportedExtensions ?? [])];
}

/** A connection's socket: the TLS one after STARTTLS; null before it connects. */
export function connectionSocket(connection: SMTPConnection): Socket | null {
  const socket = (connection as unknown as { _socket?: unknown })._socket;
  return socket instanceof Socket ? socket : null;
}

/** The TLS socket of a connection that started TLS; null while it is in plaintext. */
export function tlsSocket(connection: SMTPConnection): TLSSocket | null {
  const socket = connectionSocket(connection);
  return connection.secure && socket instanceof TLSSocket ? socket : null;
}

/** NOTIFY and ORCPT of one recipient (ORCPT as "addr-type;address", xtext decoded). */
export interface RcptDsn {
  notify?: readonly string[] | undefined;
  orcpt?: string | undefined;
}

/** The envelope field, carried along by nodemailer, that holds each recipient's RcptDsn by the address its RCPT TO names. */
export const RCPT_DSN = 'rcptDsn';

interface RcptArgsInternals {
  _envelope?: { [RCPT_DSN]?: ReadonlyMap<string, RcptDsn> };
  /** Recipients whose RCPT TO awaits its reply; the one being written is the last. */
  _recipientQueue: string[];
  _supportedExtensions: string[];
  _getDsnRcptToArgs(): string;
  _parseEhloExtensions(reply: string): void;
}

const rcptArgs = SMTPConnection.prototype as unknown as RcptArgsInternals;
const sharedRcptArgs = rcptArgs._getDsnRcptToArgs;
rcptArgs._getDsnRcptToArgs = function (this: RcptArgsInternals): string {
  const perRecipient = this._envelope?.[RCPT_DSN];
  if (!perRecipient) return sharedRcptArgs.call(this);
  // RFC 3461 §4: the parameters go only to a host that announces DSN.
  if (!this._supportedExtensions.includes('DSN')) return '';
  const own = perRecipient.get(this._recipientQueue.at(-1) ?? '');
  const args = [own?.notify?.length ? `NOTIFY=${encodeXText(own.notify.join(','))}` : '', own?.orcpt ? `ORCPT=${encodeXText(own.orcpt)}` : ''].filter(Boolean);
  return args.length ? ` ${args.join(' ')}` : '';
};

// nodemailer reads only the extensions its own client uses; CHUNKING (RFC 3030) is read here, for BDAT.
const parseExtensions = rcptArgs._parseEhloExtensions;
rcptArgs._parseEhloExtensions = function (this: RcptArgsInternals, reply: string): void {
  parseExtensions.call(this, reply);
  if (/[ -]CHUNKING\b/im.test(reply)) this._supportedExtensions.push('CHUNKING');
};

/**
 * The address as a message sent with sendMail names it in RCPT TO: nodemailer
 * normalises envelope addresses (an internationalized domain after an ASCII
 * local part becomes its A-labels).
 */
export function envelopeAddress(address: string): string {
  return new MimeNode().setEnvelope({ to: [address] }).getEnvelope().to[0] ?? address;
}

/** One transaction's envelope, addresses as they go in MAIL FROM and RCPT TO. */
export interface PipelinedEnvelope {
  from: string;
  to: readonly string[];
  size: number;
  /** Ask for BODY=8BITMIME (sent only when the connection announced it). */
  use8BitMime: boolean;
  dsn?: { ret?: string | undefined; envid?: string | undefined } | undefined;
  [RCPT_DSN]?: ReadonlyMap<string, RcptDsn> | undefined;
}

/** How a transaction went: the same fields nodemailer's send() reports. */
export interface PipelinedInfo {
  accepted: string[];
  rejectedErrors?: Error[];
  /** The reply that ended it (to the end of DATA, or to BDAT LAST). */
  response: string;
}

type Action = (reply: string) => void;
/** `answered`: the host replied to something of this transaction (its MAIL FROM at least). */
type Done = (err: Error | null, info: PipelinedInfo | undefined, answered: boolean) => void;

interface TransactionInternals {
  _socket: Socket;
  _maxAllowedSize: number | false;
  _supportedExtensions: string[];
  _pendingSend: { callback: (err: Error) => void; stream: false } | false;
  _envelope: unknown;
  _recipientQueue: string[];
  _responseActions: Action[];
  _usingSmtpUtf8: boolean;
  _using8BitMime: boolean;
  _isDestroyedMessage(what: string): string | false;
  _sendCommand(line: string): void;
  _getDsnRcptToArgs(): string;
  _formatError(message: string | Error, type: string, response: string | false, command: string): Error;
  _setDsnEnvelope(dsn: object): unknown;
  _actionMAIL(reply: string, callback: (err: Error | null) => void): void;
  _actionRCPT(reply: string, callback: (err: Error | null) => void): void;
  _actionDATA(reply: string, callback: (err: Error | null, info?: { accepted: string[]; rejectedErrors?: Error[] }) => void): void;
  _envelopeError(reply: string): Error | null;
  close(): void;
}

/**
 * One transaction on a connection whose host announced PIPELINING (RFC 2920):
 * MAIL FROM, every RCPT TO and DATA (or, with `chunked`, BDAT LAST, RFC 3030
 * §2) leave in one write. The replies are read by nodemailer's own handlers,
 * so a refusal is the same Error its send() gives (command MAIL FROM, RCPT
 * TO, DATA; BDAT for the chunk). `writeBody` writes the message once the
 * host may have it: after 354 for DATA (dot-stuffed and ended by the caller),
 * at once for BDAT, exactly `size` octets.
 */
export function sendPipelined(
  connection: SMTPConnection,
  envelope: PipelinedEnvelope,
  chunked: boolean,
  writeBody: (socket: Socket) => Promise<void>,
  done: Done,
): void {
  const c = connection as unknown as TransactionInternals;
  let returned = false;
  let answered = false;
  const callback = (err: Error | null, info?: PipelinedInfo): void => {
    if (returned) return;
    returned = true;
    if (c._pendingSend === pending) c._pendingSend = false;
    done(err, info, answered);
  };
  const pending = { callback, stream: false as const };
  const destroyed = c._isDestroyedMessage('send message');
  if (destroyed) return callback(c._formatError(destroyed, 'ECONNECTION', false, 'API'));
  if (c._maxAllowedSize && envelope.size > c._maxAllowedSize) {
    const err = c._formatError(`Message size larger than allowed ${c._maxAllowedSize}`, 'EMESSAGE', false, 'MAIL FROM');
    return void setImmediate(() => callback(err));
  }
  let dsn: unknown;
  try {
    dsn = envelope.dsn && c._setDsnEnvelope(envelope.dsn);
  } catch (err) {
    return callback(c._formatError(`Invalid DSN ${(err as Error).message}`, 'EENVELOPE', false, 'API'));
  }
  const announced = c._supportedExtensions;
  // The connection's own failures (lost, timed out, 421) end the transaction through this.
  c._pendingSend = pending;
  c._envelope = {
    from: envelope.from,
    to: [...envelope.to],
    rcptQueue: [],
    rejected: [],
    rejectedErrors: [],
    accepted: [],
    pipelined: true,
    [RCPT_DSN]: envelope[RCPT_DSN],
    ...(dsn ? { dsn } : {}),
  };
  const args: string[] = [];
  c._usingSmtpUtf8 = announced.includes('SMTPUTF8') && [envelope.from, ...envelope.to].some((a) => /[\x80-\uFFFF]/.test(a));
  if (c._usingSmtpUtf8) args.push('SMTPUTF8');
  c._using8BitMime = envelope.use8BitMime && announced.includes('8BITMIME');
  if (c._using8BitMime) args.push('BODY=8BITMIME');
  if (envelope.size > 0 && announced.includes('SIZE')) args.push(`SIZE=${envelope.size}`);
  if (envelope.dsn && announced.includes('DSN')) {
    if (envelope.dsn.ret) args.push(`RET=${encodeXText(envelope.dsn.ret)}`);
    if (envelope.dsn.envid) args.push(`ENVID=${encodeXText(envelope.dsn.envid)}`);
  }
  const socket = c._socket;
  const body = (): void => {
    writeBody(socket).catch((err: unknown) => {
      // Part of the message may be on the wire: the connection cannot carry another.
      callback(c._formatError(err instanceof Error ? err : new Error(String(err)), 'ESTREAM', false, 'API'));
      c.close();
    });
  };
  socket.cork();
  c._recipientQueue = [];
  c._responseActions.push((reply) => {
    answered = true;
    c._actionMAIL(reply, callback);
  });
  c._sendCommand(`MAIL FROM:<${envelope.from}>${args.length ? ` ${args.join(' ')}` : ''}`);
  for (const recipient of envelope.to) {
    c._recipientQueue.push(recipient);
    c._responseActions.push((reply) => c._actionRCPT(reply, callback));
    c._sendCommand(`RCPT TO:<${recipient}>${c._getDsnRcptToArgs()}`);
  }
  if (chunked) {
    // RFC 3030 §4.2: BDAT may follow the envelope unanswered; a host that refused it all discards the chunk.
    c._responseActions.push((reply) => {
      const refused = c._envelopeError(reply);
      if (refused) return callback(refused);
      if (reply.charAt(0) !== '2') return callback(c._formatError('Message failed', 'EMESSAGE', reply, 'BDAT'));
      callback(null, { ...accepted(c), response: reply });
    });
    c._sendCommand(`BDAT ${envelope.size} LAST`);
    socket.uncork();
    return body();
  }
  c._responseActions.push((reply) =>
    c._actionDATA(reply, (err) => {
      if (err) return callback(err);
      c._responseActions.push((final) => {
        if (final.charAt(0) !== '2') return callback(c._formatError('Message failed', 'EMESSAGE', final, 'DATA'));
        callback(null, { ...accepted(c), response: final });
      });
      body();
    }),
  );
  c._sendCommand('DATA');
  socket.uncork();
}

function accepted(c: TransactionInternals): Omit<PipelinedInfo, 'response'> {
  const envelope = c._envelope as { accepted: string[]; rejectedErrors: Error[] };
  return { accepted: envelope.accepted, ...(envelope.rejectedErrors.length ? { rejectedErrors: envelope.rejectedErrors } : {}) };
}
