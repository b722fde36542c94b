// What the client hears when delivery to the smart host failed. Only a reply
// about this message or its recipients (to MAIL FROM, RCPT TO or DATA) is
// passed on as the upstream gave it; everything on the relay's side of the
// connection (unreachable host, TLS, certificate, greeting, EHLO, AUTH, a
// login that does not let us relay) is a temporary 451 naming the setting to
// mend, so the sender's queue keeps the mail until it is fixed instead of
// bouncing it (RFC 5321 §4.2.5: 4yz means "try again").
import { parseReply, type RemoteHost, type SmtpReply } from '../smtp/reply.ts';

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

export interface FailureReply extends SmtpReply {
  /** The relay's side is at fault (its settings, the connection): logged at error level. */
  relaySide: boolean;
  /** The upstream's extensions (8BITMIME, SMTPUTF8) seem to have changed: learn them again. */
  relearn: boolean;
}

/** "535 5.7.8 bad\r\n535 creds" → "535 5.7.8 bad creds" */
export function oneLine(response: string | undefined): string {
  return (response ?? '').trim().replace(/\r?\n\d{3}[ -]/g, ' ').replace(/\s+/g, ' ');
}

const MESSAGE_PHASES = new Set(['MAIL FROM', 'RCPT TO', 'DATA']);

const AUTH_REQUIRED = /authenticat\w{0,6} (is )?required|must authenticate|not authenticated|not logged in|login required|AuthRequired/i;
const TLS_REQUIRED = /starttls|(encryption|tls) (is )?required/i;
const RELAY_DENIED = /relay(ing)? (access )?(is )?(denied|not permitted|prohibited|not allowed)|(unable|not permitted|not allowed) to relay|we do not relay|client host rejected/i;
/** A refusal that reads as a missing SMTPUTF8 or 8BITMIME (RFC 6531 §3.7.4.1 gives 553 5.6.7 for the former). */
const EXTENSION_MISSING = /\b[45]\.6\.7\b|SMTPUTF8|8BITMIME|8-?bit (data|characters|octets)|non-?ASCII|UTF-?8 (address|mailbox)/i;

/** `remote`: the host's address, when a connection reached it; a reply of its own is marked as coming from there. */
export function failureReply(err: SendError, side: UpstreamSide, remote?: RemoteHost): FailureReply {
  const upstream = side.host;
  const answer = oneLine(err.response);
  const quoted = answer ? ` (it answered "${answer}")` : '';
  const relay = (enhanced: string, text: string, relearn = false): FailureReply => ({ code: 451, enhanced, text, relaySide: true, relearn });
  const command = err.command ?? '';

  if (MESSAGE_PHASES.has(command) && err.responseCode && err.responseCode >= 400) {
    if (TLS_REQUIRED.test(answer)) return relay('4.7.0', `upstream ${upstream} requires TLS${quoted}: set delivery.upstream.requireTLS (or secure)`);
    if (AUTH_REQUIRED.test(answer) || err.responseCode === 530) {
      return side.user
        ? relay('4.7.0', `upstream ${upstream} does not accept delivery.upstream.auth for user ${side.user} as a login to send through it${quoted}`)
        : relay('4.7.0', `upstream ${upstream} requires a login${quoted}: set delivery.upstream.auth`);
    }
    if (RELAY_DENIED.test(answer)) {
      const login = side.user ? `user ${side.user} of delivery.upstream.auth may not relay there` : 'set delivery.upstream.auth, or have it admit this relay\'s address';
      return relay('4.7.1', `upstream ${upstream} refused to relay for us${quoted}: ${login}`);
    }
    if (EXTENSION_MISSING.test(answer)) {
      return relay('4.3.0', `upstream ${upstream} refused what its announced extensions allowed${quoted}; they are being learned again, try again later`, true);
    }
    const own = parseReply(err.response, { remote, command }) ?? { code: err.responseCode, text: oneLine(err.response), command };
    return { ...own, relaySide: false, relearn: false };
  }
  // nodemailer's own check against the SIZE the upstream announced: about the message.
  if (err.code === 'EMESSAGE' && /size larger than allowed/i.test(err.message ?? '')) {
    return { code: 552, enhanced: '5.3.4', text: `Message too large for upstream ${upstream}: ${err.message}`, relaySide: false, relearn: false };
  }
  if (command === 'STARTTLS' && err.responseCode) {
    // RFC 7372 §3: X.7.10, encryption needed.
    if (side.requireTLS) {
      return relay('4.7.10', `delivery.upstream.requireTLS is set but ${upstream} offers no STARTTLS${quoted}: enable STARTTLS there, or unset delivery.upstream.requireTLS`);
    }
    return relay('4.7.0', `upstream ${upstream} announced STARTTLS but refused it${quoted}: mend TLS on ${upstream}`);
  }
  if (err.code === 'ETLS' || (err.code === 'ESOCKET' && isTlsFailure(err.message))) {
    const why = (err.message ?? '').replace(/^Error initiating TLS - /, '');
    if (/certificate|self[- ]signed|altnames|CERT_|unable to verify|unable to get (local )?issuer/i.test(why)) {
      return relay('4.7.5', `the TLS certificate of upstream ${upstream} was not accepted (${why}): give ${upstream} a certificate valid for that name, or set delivery.upstream.rejectUnauthorized: false`);
    }
    const mode = side.secure ? 'delivery.upstream.secure is set (implicit TLS)' : 'STARTTLS';
    return relay('4.7.5', `TLS with upstream ${upstream}:${side.port} failed (${why}); ${mode}: check delivery.upstream.port and secure`);
  }
  if (command.startsWith('AUTH')) return authFailure(err, side, answer, quoted);
  if (command === 'CONN' && err.responseCode) {
    return relay('4.4.1', `upstream ${upstream} refused the session${quoted}: check that it admits this relay's address`);
  }
  if ((command === 'EHLO' || command === 'HELO' || command === 'LHLO') && err.responseCode) {
    return relay('4.5.0', `upstream ${upstream} did not accept ${command} ${side.name}${quoted}: check delivery.upstream.name`);
  }
  if (err.responseCode) return relay('4.5.0', `upstream ${upstream} answered ${command || 'a command'} unexpectedly${quoted}`);
  return relay('4.4.1', `Upstream unavailable: ${unreachable(err)} (delivery.upstream.host ${upstream}, port ${side.port})`);
}

function authFailure(err: SendError, side: UpstreamSide, answer: string, quoted: string): FailureReply {
  const who = `delivery.upstream.auth for user ${side.user ?? '?'}`;
  const relay = (enhanced: string, text: string): FailureReply => ({ code: 451, enhanced, text, relaySide: true, relearn: false });
  const code = err.responseCode;
  if (code === 535 || /\b5\.7\.8\b/.test(answer)) return relay('4.7.8', `upstream ${side.host} refused ${who}: ${answer}`);
  if (code === 454) return relay('4.7.0', `upstream ${side.host} could not check ${who} now: ${answer}`);
  if (code === 538 || code === 534 || /encrypt|TLS/i.test(answer)) {
    return relay('4.7.0', `upstream ${side.host} wants TLS before ${who}${quoted}: set delivery.upstream.requireTLS or secure`);
  }
  if (code === 500 || code === 502 || code === 503 || code === 504) {
    return relay('4.7.0', `upstream ${side.host} offers no AUTH, but ${who} is set${quoted}: check delivery.upstream.port, or use TLS (many servers offer AUTH only after STARTTLS)`);
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
