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
// - a connection's socket (a private field), whose TLS state direct
//   delivery records;
// - the method that writes RCPT TO's DSN parameters (private), which takes
//   one NOTIFY and ORCPT for the whole envelope: it is wrapped so that each
//   recipient gets its own (RFC 3461 §4.1, §4.2), and one transaction serves
//   recipients whose parameters differ.
// - the pool's resources (private), so that what a message becomes can be
//   chosen on the connection that carries it, before MAIL FROM.
// A nodemailer release may change any of these without notice; going through
// this module, such an upgrade breaks here (and in its test), in one place.
import { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { TLSSocket } from 'node:tls';
import type { Transporter } from 'nodemailer';
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

interface PoolResource {
  connection?: SMTPConnection;
  _connected?: boolean;
}

/** The extensions (8BITMIME, SMTPUTF8, …) a connected SMTPConnection saw announced. */
export function announcedExtensions(connection: SMTPConnection): string[] {
  return [...((connection as unknown as WithExtensions)._supportedExtensions ?? [])];
}

/** The established connections of a pooled transport. */
export function pooledConnections(transport: Transporter): SMTPConnection[] {
  const pool = (transport as unknown as { transporter?: { _connections?: PoolResource[] } }).transporter;
  return (pool?._connections ?? []).filter((r) => r._connected && r.connection).map((r) => r.connection!);
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

/**
 * The address as a message sent with sendMail names it in RCPT TO: nodemailer
 * normalises envelope addresses (an internationalized domain after an ASCII
 * local part becomes its A-labels).
 */
export function envelopeAddress(address: string): string {
  return new MimeNode().setEnvelope({ to: [address] }).getEnvelope().to[0] ?? address;
}

/** What goes out on one connection: chosen once it is open and its EHLO answer known. */
export interface ConnectionMessage {
  raw: Readable;
  size: number;
  /** Ask for BODY=8BITMIME (sent only when the connection announced it). */
  use8BitMime: boolean;
}

/**
 * Given to sendMail as `forConnection`: the message for this connection, or
 * the Error the send fails with before anything of it is sent.
 */
export type ForConnection = (connection: SMTPConnection) => Promise<ConnectionMessage | Error>;

interface PooledMail {
  data: { forConnection?: ForConnection };
  message: { setRaw(raw: Readable): unknown; getEnvelope(): Record<string, unknown> };
}

interface SendingResource {
  connection?: SMTPConnection;
  _connected?: boolean;
  _closed?: boolean;
  send(mail: PooledMail, callback: (err: Error | null, info?: unknown) => void): void;
  /** Hands the resource back to the pool for its next message. */
  _release(): void;
}

interface Pool {
  _createConnection(): SendingResource;
}

/**
 * Makes a pooled transport ask each message's `forConnection` what to send,
 * once the pool has given it a connection and that connection has greeted
 * and answered EHLO, but before MAIL FROM: the extensions that count are
 * those of the session that carries the message. A message moved to another
 * connection (the first one closed before it was sent) is asked again.
 */
export function choosePerConnection(transport: Transporter): void {
  const pool = (transport as unknown as { transporter?: Pool }).transporter;
  if (!pool || typeof pool._createConnection !== 'function') throw new Error('nodemailer: this transport is not pooled; choosePerConnection needs its pool');
  const create = pool._createConnection.bind(pool);
  pool._createConnection = () => {
    const resource = create();
    const send = resource.send.bind(resource);
    resource.send = (mail, callback) => {
      const choose = mail.data.forConnection;
      // Not connected yet: the pool connects, then calls send() again, which comes back here.
      if (!choose || !resource._connected || resource._closed || !resource.connection) return send(mail, callback);
      choose(resource.connection).then(
        (chosen) => {
          if (chosen instanceof Error) {
            // Nothing was sent on the connection: it goes back to the pool as it is.
            callback(chosen);
            if (!resource._closed) resource._release();
            return;
          }
          mail.message.setRaw(chosen.raw);
          Object.assign(mail.message.getEnvelope(), { size: chosen.size, use8BitMime: chosen.use8BitMime });
          // A resource closed meanwhile does nothing here; the pool has given the message to another.
          send(mail, callback);
        },
        (err: unknown) => {
          callback(err instanceof Error ? err : new Error(String(err)));
          if (!resource._closed) resource._release();
        },
      );
    };
    return resource;
  };
}
