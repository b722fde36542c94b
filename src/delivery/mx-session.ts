// One SMTP session with one address of a receiving host: connect, EHLO,
// STARTTLS when offered (RFC 7435 opportunistic security: the certificate
// is checked and the result recorded, but not required), a transaction,
// then QUIT, or the session handed back open for the next message to the
// same destination (session-cache.ts). Nothing here decides which host comes
// next: it reports what happened.
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

/** A session that delivered, open and ready for the next transaction: kept under backlog (session-cache.ts). */
export interface OpenSession {
  connection: SMTPConnection;
  tls: TlsState;
  extensions: Set<string>;
}

const NON_ASCII = /[^\x00-\x7f]/;
/** How long a host may take to close the connection after QUIT before we cut it. */
const CLOSE_WAIT_MS = 5000;

/**
 * `envelope.to`: the recipients for this host; their DSN parameters go to a
 * host announcing DSN (RFC 3461 §4). `kept`: a session opened earlier for the
 * same target, tried first; should the host have closed it before answering
 * anything, a new one is opened. `keep`: a session that delivered is handed
 * back open in `session` rather than ended with QUIT.
 */
export async function runSession(
  target: SessionTarget,
  envelope: Envelope,
  message: SessionMessage,
  reuse: { kept?: OpenSession | undefined; keep: boolean } = { keep: false },
): Promise<SessionResult & { session?: OpenSession }> {
  if (reuse.kept) {
    const again = await transact(reuse.kept, target, envelope, message, true);
    if (again) return finish(reuse.kept, again, reuse.keep);
    await end(reuse.kept.connection, false);
  }
  const opened = await openSession(target);
  if ('kind' in opened) return opened;
  return finish(opened, (await transact(opened, target, envelope, message, false))!, reuse.keep);
}

/** Connect, EHLO, STARTTLS when offered, and the check that the host is not this relay; a failure closes it. */
function openSession(target: SessionTarget): Promise<OpenSession | Extract<SessionResult, { kind: 'failed' }>> {
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
    const failed = (result: Extract<SessionResult, { kind: 'failed' }>, quit: boolean): void => {
      if (settled) return;
      settled = true;
      void end(connection, quit).then(() => resolve(result));
    };
    const failure = (err: SendError): void => {
      const reply = failureReply(err, { kind: 'mx', hop: target, requireTLS: target.requireTLS, transaction: false });
      failed({ kind: 'failed', reply: plainReply(reply), tlsFailed: reply.tlsFailed, loop: false }, false);
    };
    // Until it is open; a transaction's own failures reach it through sendTransaction.
    connection.on('error', (err: SendError) => failure(err));
    connection.connect((err) => {
      if (err) return failure(err as SendError);
      if (settled) return;
      // RFC 5321 §4.1.1.1: the EHLO reply starts with the server's name; ours means the mail came back to us.
      const greeting = /^\d{3}[ -](\S+)/.exec(String(connection.lastServerResponse || ''))?.[1];
      if (greeting && target.ownNames.some((own) => hostName(own) === hostName(greeting))) {
        const reply = status(
          550,
          '5.4.6',
          `Mail for ${target.domain} loops back to this relay: ${target.host} [${target.address}]:${target.port} greets as ${greeting}, this relay's own name`,
        );
        return failed({ kind: 'failed', reply, tlsFailed: false, loop: true }, true);
      }
      settled = true;
      resolve({ connection, tls: tlsState(connection), extensions: new Set(announcedExtensions(connection).map((e) => e.toUpperCase())) });
    });
  });
}

/**
 * One transaction on an open session. With `kept`, null when the connection
 * failed before the host answered anything of it (the host closed it meanwhile).
 */
async function transact(
  session: OpenSession,
  target: SessionTarget,
  envelope: Envelope,
  message: SessionMessage,
  kept: boolean,
): Promise<(SessionResult & { clean: boolean }) | null> {
  const { from, to: recipients, dsn } = envelope;
  const { tls, extensions } = session;
  const replies = new Map<string, SmtpReply>();
  // RFC 6531 §3.4: without SMTPUTF8 an 8-bit address cannot be given to the host at all.
  const refuseUtf8 = (address: string): SmtpReply =>
    status(553, '5.6.7', `${target.host} does not announce SMTPUTF8, so <${address}> cannot be delivered to it`);
  if (!extensions.has('SMTPUTF8') && NON_ASCII.test(from)) {
    for (const recipient of recipients) replies.set(recipient, refuseUtf8(from));
    return { kind: 'answered', tls, replies, clean: true };
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
    return { kind: 'answered', tls, replies, clean: true };
  }
  // The connection itself failing (lost, timed out) fails the session, as it would before MAIL FROM: the next address is tried.
  let lost: SendError | null = null;
  const onError = (err: SendError): void => void (lost ??= err);
  session.connection.on('error', onError);
  const outcome = await sendTransaction(session.connection, { from, to: sendable, dsn }, message);
  session.connection.off('error', onError);
  if (!outcome.ok) {
    const { err } = outcome;
    if (kept && outcome.unanswered && lost) return null;
    if (lost) {
      const failure = failureReply(lost, { kind: 'mx', hop: target, requireTLS: target.requireTLS, transaction: false });
      return { kind: 'failed', reply: plainReply(failure), tlsFailed: failure.tlsFailed, loop: false, clean: false };
    }
    for (const rejected of err.rejectedErrors ?? []) replies.set(rejectedRecipient(rejected), recipientReply(rejected, target));
    const all = transactionFailure(err, target);
    for (const recipient of sendable) if (!replies.has(recipient)) replies.set(recipient, all);
    return { kind: 'answered', tls, replies, clean: false };
  }
  const { info } = outcome;
  for (const rejected of info.rejectedErrors) replies.set(rejectedRecipient(rejected), recipientReply(rejected, target));
  const accepted = hostReply(info.response, target, info.command) ?? {
    ...status(250, '2.0.0', 'Ok'),
    remote: { host: target.host, address: target.address },
    command: info.command,
  };
  const text = `Delivered to ${target.host} [${target.address}]: ${accepted.text}`.trim();
  for (const recipient of info.accepted) replies.set(recipient, { ...accepted, text });
  for (const recipient of sendable) if (!replies.has(recipient)) replies.set(recipient, transactionFailure({ message: 'no reply for this recipient' }, target));
  return { kind: 'answered', tls, replies, clean: true };
}

/** The session handed back when asked for and fit for another transaction; else ended. */
async function finish(
  session: OpenSession,
  { clean, ...result }: SessionResult & { clean?: boolean },
  keep: boolean,
): Promise<SessionResult & { session?: OpenSession }> {
  if (keep && clean && result.kind === 'answered' && !session.connection.destroyed) return { ...result, session };
  await end(session.connection, result.kind === 'answered');
  return result;
}

/** QUIT (or just close); resolves once the socket is closed, so a connection slot is free only when the connection is gone. */
export function end(connection: SMTPConnection, quit: boolean): Promise<void> {
  return new Promise((resolve) => {
    const socket = connectionSocket(connection);
    if (quit && !connection.destroyed) connection.quit();
    else connection.close();
    if (!socket || socket.destroyed) return resolve();
    const timer = setTimeout(() => {
      socket.destroy();
      resolve();
    }, CLOSE_WAIT_MS);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
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
