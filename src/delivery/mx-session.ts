// One SMTP session with one address of a receiving host: connect, EHLO,
// STARTTLS when offered (RFC 7435 opportunistic security: the certificate
// is checked and the result recorded, but not required), one transaction,
// QUIT. Nothing here decides which host comes next: it reports what happened.
import { isIP } from 'node:net';
import type { Octets } from '../message/octets.ts';
import { announcedExtensions, connectionSocket, SMTPConnection, tlsSocket } from '../smtp/nodemailer-internals.ts';
import { failureReply, plainReply, type SendError } from './failure-reply.ts';
import { hostName } from './mx-route.ts';
import { hostReply, status, type Hop } from './mx-reply.ts';
import type { SmtpReply } from '../smtp/reply.ts';
import { sendTransaction } from './transaction.ts';
import type { Envelope } from './upstream.ts';

/** The message, and whether it holds 8-bit octets (looked at once, not per host). */
export interface SessionMessage {
  octets: Octets;
  eightBit: boolean;
}

export interface SessionTarget extends Hop {
  /** Name we give in EHLO; a host that greets with one of `ownNames` is this relay. */
  heloName: string;
  ownNames: string[];
  requireTLS: boolean;
  /** Do not start TLS: the retry after a failed TLS handshake. */
  plaintext: boolean;
  timeoutMs: number;
}

export interface TlsState {
  /** "TLSv1.3", or "none". */
  protocol: string;
  cipher?: string;
  /** Whether the certificate chains to a trusted root and names the host; null without TLS. */
  verified: boolean | null;
  /** Why it did not verify. */
  verifyError?: string;
}

export type SessionResult =
  /** No recipient was answered: try the next address or host. */
  | { kind: 'failed'; reply: SmtpReply; tlsFailed: boolean; loop: boolean }
  /** The host answered for each recipient given. */
  | { kind: 'answered'; tls: TlsState; replies: Map<string, SmtpReply> };

const NON_ASCII = /[^\x00-\x7f]/;
/** How long a host may take to close the connection after QUIT before we cut it. */
const CLOSE_WAIT_MS = 5000;

/** `envelope.to`: the recipients for this host; their DSN parameters go to a host announcing DSN (RFC 3461 §4). */
export function runSession(target: SessionTarget, envelope: Envelope, message: SessionMessage): Promise<SessionResult> {
  const { from, to: recipients, dsn } = envelope;
  return new Promise((resolve) => {
    const connection = new SMTPConnection({
      host: target.address,
      port: target.port,
      name: target.heloName,
      requireTLS: target.requireTLS,
      ignoreTLS: target.plaintext && !target.requireTLS,
      // A STARTTLS the host refuses leaves the session in plaintext rather than ending it.
      opportunisticTLS: !target.requireTLS,
      // RFC 6066 §3: SNI carries host names only, never an address literal; the certificate is checked against the MX name.
      tls: { rejectUnauthorized: false, ...(isIP(target.host) || target.host.startsWith('[') ? {} : { servername: target.host }) },
      connectionTimeout: target.timeoutMs,
      greetingTimeout: target.timeoutMs,
      socketTimeout: target.timeoutMs,
      logger: false,
    });
    let settled = false;
    // Resolved once the socket is closed, so a connection slot is free only when the connection is gone.
    const finish = (result: SessionResult, quit: boolean): void => {
      if (settled) return;
      settled = true;
      const socket = connectionSocket(connection);
      if (quit) connection.quit();
      else connection.close();
      if (!socket || socket.destroyed) return resolve(result);
      const timer = setTimeout(() => {
        socket.destroy();
        resolve(result);
      }, CLOSE_WAIT_MS);
      socket.once('close', () => {
        clearTimeout(timer);
        resolve(result);
      });
    };
    const failed = (err: SendError): void => {
      const failure = failureReply(err, { kind: 'mx', hop: target, requireTLS: target.requireTLS, transaction: false });
      finish({ kind: 'failed', reply: plainReply(failure), tlsFailed: failure.tlsFailed, loop: false }, false);
    };
    connection.on('error', (err: SendError) => failed(err));
    connection.connect((err) => {
      if (err) return failed(err as SendError);
      if (settled) return;
      // RFC 5321 §4.1.1.1: the EHLO reply starts with the server's name; ours means the mail came back to us.
      const greeting = /^\d{3}[ -](\S+)/.exec(String(connection.lastServerResponse || ''))?.[1];
      if (greeting && target.ownNames.some((own) => hostName(own) === hostName(greeting))) {
        const reply = status(
          550,
          '5.4.6',
          `Mail for ${target.domain} loops back to this relay: ${target.host} [${target.address}]:${target.port} greets as ${greeting}, this relay's own name`,
        );
        return finish({ kind: 'failed', reply, tlsFailed: false, loop: true }, true);
      }
      const tls = tlsState(connection);
      const extensions = new Set(announcedExtensions(connection).map((e) => e.toUpperCase()));
      const replies = new Map<string, SmtpReply>();
      // RFC 6531 §3.4: without SMTPUTF8 an 8-bit address cannot be given to the host at all.
      const refuseUtf8 = (address: string): SmtpReply =>
        status(553, '5.6.7', `${target.host} does not announce SMTPUTF8, so <${address}> cannot be delivered to it`);
      if (!extensions.has('SMTPUTF8') && NON_ASCII.test(from)) {
        for (const recipient of recipients) replies.set(recipient, refuseUtf8(from));
        return finish({ kind: 'answered', tls, replies }, true);
      }
      const sendable = recipients.filter((recipient) => {
        if (extensions.has('SMTPUTF8') || !NON_ASCII.test(recipient)) return true;
        replies.set(recipient, refuseUtf8(recipient));
        return false;
      });
      const { eightBit } = message;
      if (sendable.length === 0 || (eightBit && !extensions.has('8BITMIME'))) {
        // The message is made 7-bit before signing; an 8-bit one here is our mistake, not the host's (RFC 6152 §3).
        const own = status(451, '4.6.3', `the message has 8-bit content but ${target.host} does not announce 8BITMIME`);
        for (const recipient of sendable) replies.set(recipient, own);
        return finish({ kind: 'answered', tls, replies }, true);
      }
      void sendTransaction(connection, { from, to: sendable, dsn }, message).then((outcome) => {
        if (!outcome.ok) {
          const { err } = outcome;
          for (const rejected of err.rejectedErrors ?? []) replies.set(rejectedRecipient(rejected), recipientReply(rejected, target));
          const all = transactionFailure(err, target);
          for (const recipient of sendable) if (!replies.has(recipient)) replies.set(recipient, all);
        } else {
          const { info } = outcome;
          for (const rejected of info.rejectedErrors) replies.set(rejectedRecipient(rejected), recipientReply(rejected, target));
          const accepted = hostReply(info.response, target, info.command) ?? {
            ...status(250, '2.0.0', 'Ok'),
            remote: { host: target.host, address: target.address },
            command: info.command,
          };
          const text = `Delivered to ${target.host} [${target.address}]: ${accepted.text}`.trim();
          for (const recipient of info.accepted) replies.set(recipient, { ...accepted, text });
          for (const recipient of sendable)
            if (!replies.has(recipient)) replies.set(recipient, transactionFailure({ message: 'no reply for this recipient' }, target));
        }
        finish({ kind: 'answered', tls, replies }, true);
      });
    });
  });
}

function rejectedRecipient(err: SendError): string {
  return (err as SendError & { recipient?: string }).recipient ?? '';
}

function recipientReply(err: SendError, target: SessionTarget): SmtpReply {
  return hostReply(err.response, target, 'RCPT TO') ?? transactionFailure({ ...err, command: 'RCPT TO' }, target);
}

/** The reply of one recipient after a transaction that failed as a whole (MAIL FROM, DATA, or the connection mid-way). */
function transactionFailure(err: SendError, target: SessionTarget): SmtpReply {
  return plainReply(failureReply(err, { kind: 'mx', hop: target, requireTLS: target.requireTLS, transaction: true }));
}

function tlsState(connection: SMTPConnection): TlsState {
  const socket = tlsSocket(connection);
  if (!socket) return { protocol: 'none', verified: null };
  const error = socket.authorizationError;
  return {
    protocol: socket.getProtocol() ?? 'TLS',
    cipher: socket.getCipher()?.name,
    verified: socket.authorized,
    ...(socket.authorized ? {} : { verifyError: error instanceof Error ? error.message : String(error ?? 'unknown') }),
  };
}
