// Replies of direct delivery, per recipient and for the whole message.
// A receiving host's reply about the message or a recipient (to MAIL FROM,
// RCPT TO or DATA) is kept as it gave it; trouble on the way there (DNS, the
// connection, TLS, the greeting) is a temporary 451 saying what went wrong,
// since the next try may well succeed (RFC 5321 §4.2.5, §5.1).
import { parseReply, type SmtpReply } from '../smtp/reply.ts';
import { oneLine, type SendError } from './failure-reply.ts';

/** A reply of ours, e.g. status(451, '4.4.1', 'No answer from mx.example.net'). */
export function status(code: number, enhanced: string, text: string): SmtpReply {
  return { code, enhanced, text };
}

/**
 * A receiving host's own reply, from where it came; with the generic
 * enhanced code of its class when it gave none that agrees (RFC 3463 §3.1:
 * X.0.0), so that every reply of direct delivery carries one.
 */
export function hostReply(response: string | undefined, hop: Hop, command: string | undefined): SmtpReply | null {
  const reply = parseReply(response, { remote: { host: hop.host, address: hop.address }, command });
  return reply && { ...reply, enhanced: reply.enhanced ?? `${String(reply.code)[0]}.0.0` };
}

/** Where a session went, for the reasons we give. */
export interface Hop {
  domain: string;
  host: string;
  address: string;
  port: number;
}

const at = (hop: Hop): string => `${hop.host} [${hop.address}]:${hop.port}`;

/**
 * A session that failed before any recipient was answered: 451 with the
 * reason, and whether TLS itself failed (then the same host is tried once
 * more without it, RFC 7435 §3).
 */
export function sessionFailure(err: SendError, hop: Hop, requireTLS: boolean): { reply: SmtpReply; tlsFailed: boolean } {
  const answer = oneLine(err.response);
  const quoted = answer ? `: "${answer}"` : '';
  const command = err.command ?? '';
  const temporary = (enhanced: string, text: string, tlsFailed = false) => ({ reply: status(451, enhanced, text), tlsFailed });
  if (err.code === 'ETLS' || (err.code === 'ESOCKET' && /SSL|TLS|handshake|wrong version number/i.test(err.message ?? ''))) {
    if (command === 'STARTTLS' && err.responseCode && requireTLS) {
      return temporary('4.7.10', `${at(hop)} refused STARTTLS${quoted}, and delivery.upstream.requireTLS is set`);
    }
    const why = (err.message ?? '').replace(/^Error initiating TLS - /, '');
    return temporary('4.4.2', `TLS with ${at(hop)} failed (${why})`, true);
  }
  if (command === 'EHLO' && requireTLS && /STARTTLS/i.test(err.message ?? '')) {
    return temporary('4.7.10', `${at(hop)} offers no STARTTLS, and delivery.upstream.requireTLS is set`);
  }
  if (command === 'CONN' && err.responseCode) return temporary('4.4.1', `${at(hop)} refused the session${quoted}`);
  if ((command === 'EHLO' || command === 'HELO') && err.responseCode) return temporary('4.4.2', `${at(hop)} did not accept ${command}${quoted}`);
  if (err.responseCode) return temporary('4.4.2', `${at(hop)} answered ${command || 'a command'} unexpectedly${quoted}`);
  const system = err.originalCode ?? '';
  if (system === 'ECONNREFUSED' || err.code === 'ECONNREFUSED') return temporary('4.4.1', `${at(hop)} refused the connection`);
  if (err.code === 'ETIMEDOUT') return temporary('4.4.1', `No answer from ${at(hop)} (${err.message ?? 'timed out'})`);
  return temporary('4.4.2', `Connection to ${at(hop)} failed (${err.message ?? err.code ?? 'unknown error'})`);
}

/** The reply of one recipient after a transaction that failed as a whole (MAIL FROM, DATA, or the connection mid-way). */
export function transactionFailure(err: SendError, hop: Hop): SmtpReply {
  if (err.code === 'EMESSAGE' && !err.responseCode && /size larger than allowed/i.test(err.message ?? '')) {
    return status(552, '5.3.4', `Message too large for ${hop.host}: ${err.message}`);
  }
  const own = err.responseCode ? hostReply(err.response, hop, err.command) : null;
  if (own) return own;
  return status(451, '4.4.2', `Connection to ${at(hop)} lost during ${err.command ?? 'the transaction'} (${err.message ?? err.code ?? 'unknown error'})`);
}
