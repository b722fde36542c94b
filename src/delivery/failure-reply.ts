// What the sender hears when a delivery client (nodemailer: the smart host's
// pool, a direct-delivery session) fails: one reading of nodemailer's errors
// for both, worded for each.
//
// Only a reply about this message or its recipients (to MAIL FROM, RCPT TO or
// DATA) is passed on as the host gave it. Everything on the relay's side of
// the connection (unreachable host, TLS, certificate, greeting, EHLO, AUTH, a
// login that does not let us relay) is a temporary 451 saying what went
// wrong: for the smart host, naming the setting to mend, so the sender's queue
// keeps the mail until it is fixed instead of bouncing it (RFC 5321 §4.2.5:
// 4yz means "try again"); for a receiving host, since the next try, or the
// next host, may well succeed (RFC 5321 §5.1).
import { parseReply, type RemoteHost, type SmtpReply } from '../smtp/reply.ts';
import { hostReply, type Hop } from './mx-reply.ts';

/** The fields of a nodemailer error that matter here. */
export interface SendError {
  code?: string;
  /** nodemailer's phase: CONN, EHLO, HELO, STARTTLS, "AUTH PLAIN", MAIL FROM, RCPT TO, DATA, API … */
  command?: string;
  responseCode?: number;
  response?: string;
  message?: string;
  /** The system error behind a socket failure (ECONNREFUSED, ENOTFOUND …). */
  originalCode?: string;
  rejectedErrors?: SendError[];
}

/** The settings a reason may point at. */
export interface UpstreamSide {
  host: string;
  port: number;
  user?: string;
  requireTLS: boolean;
  secure: boolean;
  /** Name given in EHLO. */
  name: string;
}

/** Whom the failed client was talking to. */
export type Via =
  /** `remote`: the host's address, when a connection reached it; a reply of its own is marked as coming from there. */
  | { kind: 'smart-host'; side: UpstreamSide; remote?: RemoteHost | undefined }
  /** `transaction`: the session was set up and MAIL FROM sent; a failure then is about the transaction. */
  | { kind: 'mx'; hop: Hop; requireTLS: boolean; transaction: boolean };

export interface FailureReply extends SmtpReply {
  /** The relay's side is at fault (its settings, the connection): the smart host logs it at error level. */
  relaySide: boolean;
  /** The upstream's extensions (8BITMIME, SMTPUTF8) seem to have changed: learn them again. */
  relearn: boolean;
  /** TLS itself failed: a receiving host is tried once more without it (RFC 7435 §3). */
  tlsFailed: boolean;
}

/** "535 5.7.8 bad\r\n535 creds" → "535 5.7.8 bad creds" */
export function oneLine(response: string | undefined): string {
  return (response ?? '')
    .trim()
    .replace(/\r?\n\d{3}[ -]/g, ' ')
    .replace(/\s+/g, ' ');
}

const MESSAGE_PHASES = new Set(['MAIL FROM', 'RCPT TO', 'DATA', 'BDAT']);

/** What went wrong, read from a nodemailer error once for every client. */
type Cause =
  /** The host refused MAIL FROM, RCPT TO or DATA. */
  | 'answered'
  /** nodemailer's own check against the SIZE the host announced: about the message. */
  | 'too-large'
  /** STARTTLS answered with a refusal. */
  | 'starttls-refused'
  | 'tls'
  /** TLS is required and the host does not offer STARTTLS. */
  | 'no-starttls'
  | 'auth'
  /** The greeting was a refusal. */
  | 'greeting'
  /** EHLO, HELO or LHLO refused. */
  | 'hello'
  /** Another command answered with something else than expected. */
  | 'unexpected'
  /** No answer at all: the connection failed or was lost. */
  | 'unreachable';

function causeOf(err: SendError, requireTLS: boolean): Cause {
  const command = err.command ?? '';
  if (MESSAGE_PHASES.has(command) && err.responseCode && err.responseCode >= 400) return 'answered';
  if (err.code === 'EMESSAGE' && /size larger than allowed/i.test(err.message ?? '')) return 'too-large';
  if (command === 'STARTTLS' && err.responseCode) return 'starttls-refused';
  if (err.code === 'ETLS' || (err.code === 'ESOCKET' && isTlsFailure(err.message))) return 'tls';
  if (command === 'EHLO' && requireTLS && /STARTTLS/i.test(err.message ?? '')) return 'no-starttls';
  if (command.startsWith('AUTH')) return 'auth';
  if (command === 'CONN' && err.responseCode) return 'greeting';
  if ((command === 'EHLO' || command === 'HELO' || command === 'LHLO') && err.responseCode) return 'hello';
  if (err.responseCode) return 'unexpected';
  return 'unreachable';
}

/** The reply alone, as the client and the queue see it. */
export function plainReply({ relaySide: _relaySide, relearn: _relearn, tlsFailed: _tlsFailed, ...reply }: FailureReply): SmtpReply {
  return reply;
}

export function failureReply(err: SendError, via: Via): FailureReply {
  const cause = causeOf(err, via.kind === 'mx' ? via.requireTLS : via.side.requireTLS);
  return via.kind === 'mx' ? mxFailure(err, cause, via) : smartHostFailure(err, cause, via.side, via.remote);
}

const AUTH_REQUIRED = /authenticat\w{0,6} (is )?required|must authenticate|not authenticated|not logged in|login required|AuthRequired/i;
const TLS_REQUIRED = /starttls|(encryption|tls) (is )?required/i;
const RELAY_DENIED =
  /relay(ing)? (access )?(is )?(denied|not permitted|prohibited|not allowed)|(unable|not permitted|not allowed) to relay|we do not relay|client host rejected/i;
/** A refusal that reads as a missing SMTPUTF8 or 8BITMIME (RFC 6531 §3.7.4.1 gives 553 5.6.7 for the former). */
const EXTENSION_MISSING = /\b[45]\.6\.7\b|SMTPUTF8|8BITMIME|8-?bit (data|characters|octets)|non-?ASCII|UTF-?8 (address|mailbox)/i;

const ours = (code: number, enhanced: string, text: string, flags: Partial<Pick<FailureReply, 'relearn' | 'tlsFailed'>> = {}): FailureReply => ({
  code,
  enhanced,
  text,
  relaySide: code === 451,
  relearn: flags.relearn ?? false,
  tlsFailed: flags.tlsFailed ?? false,
});
const theirs = (reply: SmtpReply): FailureReply => ({ ...reply, relaySide: false, relearn: false, tlsFailed: false });

function smartHostFailure(err: SendError, cause: Cause, side: UpstreamSide, remote: RemoteHost | undefined): FailureReply {
  const upstream = side.host;
  const answer = oneLine(err.response);
  const quoted = answer ? ` (it answered "${answer}")` : '';
  const relay = (enhanced: string, text: string, relearn = false): FailureReply => ours(451, enhanced, text, { relearn });
  const command = err.command ?? '';
  switch (cause) {
    case 'answered': {
      if (TLS_REQUIRED.test(answer)) return relay('4.7.0', `upstream ${upstream} requires TLS${quoted}: set delivery.upstream.requireTLS (or secure)`);
      if (AUTH_REQUIRED.test(answer) || err.responseCode === 530) {
        return side.user
          ? relay('4.7.0', `upstream ${upstream} does not accept delivery.upstream.auth for user ${side.user} as a login to send through it${quoted}`)
          : relay('4.7.0', `upstream ${upstream} requires a login${quoted}: set delivery.upstream.auth`);
      }
      if (RELAY_DENIED.test(answer)) {
        const login = side.user
          ? `user ${side.user} of delivery.upstream.auth may not relay there`
          : "set delivery.upstream.auth, or have it admit this relay's address";
        return relay('4.7.1', `upstream ${upstream} refused to relay for us${quoted}: ${login}`);
      }
      if (EXTENSION_MISSING.test(answer)) {
        return relay(
          '4.3.0',
          `upstream ${upstream} refused what its announced extensions allowed${quoted}; they are being learned again, try again later`,
          true,
        );
      }
      return theirs(parseReply(err.response, { remote, command }) ?? { code: err.responseCode!, text: answer, command });
    }
    case 'too-large':
      return ours(552, '5.3.4', `Message too large for upstream ${upstream}: ${err.message}`);
    case 'starttls-refused':
    case 'no-starttls':
      // RFC 7372 §3: X.7.10, encryption needed.
      if (side.requireTLS) {
        return relay(
          '4.7.10',
          `delivery.upstream.requireTLS is set but ${upstream} offers no STARTTLS${quoted}: enable STARTTLS there, or unset delivery.upstream.requireTLS`,
        );
      }
      return relay('4.7.0', `upstream ${upstream} announced STARTTLS but refused it${quoted}: mend TLS on ${upstream}`);
    case 'tls': {
      const why = tlsWhy(err);
      if (/certificate|self[- ]signed|altnames|CERT_|unable to verify|unable to get (local )?issuer/i.test(why)) {
        return relay(
          '4.7.5',
          `the TLS certificate of upstream ${upstream} was not accepted (${why}): give ${upstream} a certificate valid for that name, or set delivery.upstream.rejectUnauthorized: false`,
        );
      }
      const mode = side.secure ? 'delivery.upstream.secure is set (implicit TLS)' : 'STARTTLS';
      return relay('4.7.5', `TLS with upstream ${upstream}:${side.port} failed (${why}); ${mode}: check delivery.upstream.port and secure`);
    }
    case 'auth':
      return authFailure(err, side, answer, quoted);
    case 'greeting':
      return relay('4.4.1', `upstream ${upstream} refused the session${quoted}: check that it admits this relay's address`);
    case 'hello':
      return relay('4.5.0', `upstream ${upstream} did not accept ${command} ${side.name}${quoted}: check delivery.upstream.name`);
    case 'unexpected':
      return relay('4.5.0', `upstream ${upstream} answered ${command || 'a command'} unexpectedly${quoted}`);
    case 'unreachable':
      return relay('4.4.1', `Upstream unavailable: ${unreachable(err)} (delivery.upstream.host ${upstream}, port ${side.port})`);
  }
}

function mxFailure(err: SendError, cause: Cause, via: Extract<Via, { kind: 'mx' }>): FailureReply {
  const { hop, requireTLS } = via;
  const at = `${hop.host} [${hop.address}]:${hop.port}`;
  const answer = oneLine(err.response);
  const quoted = answer ? `: "${answer}"` : '';
  const command = err.command ?? '';
  if (cause === 'too-large') return ours(552, '5.3.4', `Message too large for ${hop.host}: ${err.message}`);
  if (via.transaction) {
    const own = err.responseCode ? hostReply(err.response, hop, err.command) : null;
    if (own) return theirs(own);
    return ours(451, '4.4.2', `Connection to ${at} lost during ${err.command ?? 'the transaction'} (${err.message ?? err.code ?? 'unknown error'})`);
  }
  switch (cause) {
    case 'answered':
    case 'unexpected':
    case 'auth':
      return ours(451, '4.4.2', `${at} answered ${command || 'a command'} unexpectedly${quoted}`);
    case 'starttls-refused':
      if (requireTLS) return ours(451, '4.7.10', `${at} refused STARTTLS${quoted}, and delivery.upstream.requireTLS is set`);
      return ours(451, '4.4.2', `TLS with ${at} failed (${tlsWhy(err)})`, { tlsFailed: true });
    case 'tls':
      return ours(451, '4.4.2', `TLS with ${at} failed (${tlsWhy(err)})`, { tlsFailed: true });
    case 'no-starttls':
      return ours(451, '4.7.10', `${at} offers no STARTTLS, and delivery.upstream.requireTLS is set`);
    case 'greeting':
      return ours(451, '4.4.1', `${at} refused the session${quoted}`);
    case 'hello':
      return ours(451, '4.4.2', `${at} did not accept ${command}${quoted}`);
    case 'unreachable':
      if (err.originalCode === 'ECONNREFUSED' || err.code === 'ECONNREFUSED') return ours(451, '4.4.1', `${at} refused the connection`);
      if (err.code === 'ETIMEDOUT') return ours(451, '4.4.1', `No answer from ${at} (${err.message ?? 'timed out'})`);
      return ours(451, '4.4.2', `Connection to ${at} failed (${err.message ?? err.code ?? 'unknown error'})`);
  }
}

function tlsWhy(err: SendError): string {
  return (err.message ?? '').replace(/^Error initiating TLS - /, '');
}

function authFailure(err: SendError, side: UpstreamSide, answer: string, quoted: string): FailureReply {
  const who = `delivery.upstream.auth for user ${side.user ?? '?'}`;
  const relay = (enhanced: string, text: string): FailureReply => ours(451, enhanced, text);
  const code = err.responseCode;
  if (code === 535 || /\b5\.7\.8\b/.test(answer)) return relay('4.7.8', `upstream ${side.host} refused ${who}: ${answer}`);
  if (code === 454) return relay('4.7.0', `upstream ${side.host} could not check ${who} now: ${answer}`);
  if (code === 538 || code === 534 || /encrypt|TLS/i.test(answer)) {
    return relay('4.7.0', `upstream ${side.host} wants TLS before ${who}${quoted}: set delivery.upstream.requireTLS or secure`);
  }
  if (code === 500 || code === 502 || code === 503 || code === 504) {
    return relay(
      '4.7.0',
      `upstream ${side.host} offers no AUTH, but ${who} is set${quoted}: check delivery.upstream.port, or use TLS (many servers offer AUTH only after STARTTLS)`,
    );
  }
  return relay('4.7.0', `upstream ${side.host} did not accept ${who}${quoted || `: ${err.message ?? 'unknown error'}`}`);
}

function isTlsFailure(message: string | undefined): boolean {
  return /certificate|self[- ]signed|altnames|SSL|TLS|wrong version number|handshake/i.test(message ?? '');
}

function unreachable(err: SendError): string {
  const system = err.originalCode ?? '';
  if (system === 'ECONNREFUSED') return 'connection refused';
  if (system === 'ENOTFOUND' || err.code === 'EDNS') return 'its name does not resolve';
  if (err.code === 'ETIMEDOUT') return `timed out (${err.message ?? 'no answer'})`;
  return err.message ?? err.code ?? 'unknown error';
}
