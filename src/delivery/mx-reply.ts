// Replies of direct delivery, per recipient and for the whole message.
// A receiving host's reply about the message or a recipient (to MAIL FROM,
// RCPT TO or DATA) is kept as it gave it; trouble on the way there (DNS, the
// connection, TLS, the greeting) is a temporary 451 saying what went wrong,
// since the next try may well succeed (RFC 5321 §4.2.5, §5.1).
import { smtpReply } from '../smtp/reply.ts';
import { oneLine, type SendError } from './failure-reply.ts';
import type { UpstreamReply } from './upstream.ts';

/** An SMTP reply with its RFC 3463 enhanced status code. */
export interface StatusReply {
  code: number;
  /** Always set: the host's own when it gave one of the right class, else "5.0.0", "4.0.0" or "2.0.0". */
  enhanced: string;
  /** The text without code and enhanced code. */
  text: string;
}

export interface RecipientReply {
  recipient: string;
  status: 'accepted' | 'refused';
  reply: StatusReply;
}

/** What `deliver` answers: one reply for the whole message, and each recipient's own (`address` as the queue reads it). */
export interface DeliveryReport extends UpstreamReply {
  recipients: (RecipientReply & { address: string })[];
}

/** A reply of ours, e.g. status(451, '4.4.1', 'No answer from mx.example.net'). */
export function status(code: number, enhanced: string, text: string): StatusReply {
  return { code, enhanced, text };
}

/** "550-5.1.1 No\r\n550 5.1.1 such user" → {550, "5.1.1", "No such user"}; null when it is no SMTP reply. */
export function parseReply(response: string | undefined): StatusReply | null {
  const lines = (response ?? '').trim().split(/\r?\n/);
  const code = /^([245])\d\d/.exec(lines[0]!)?.[0];
  if (!code) return null;
  const enhanced = /^\d{3}[ -]?([245]\.\d{1,3}\.\d{1,3})(?=\s|$)/.exec(lines[0]!)?.[1];
  // RFC 3463 §2: the class of the enhanced code must agree with the reply's; when it does not, the reply code wins.
  const agrees = enhanced !== undefined && enhanced[0] === code[0];
  // RFC 2034 §4: every line of a multi-line reply repeats the enhanced code.
  const text = lines
    .map((line) => {
      const rest = line.replace(/^\d{3}[ -]?/, '').trim();
      return agrees && (rest === enhanced || rest.startsWith(`${enhanced} `)) ? rest.slice(enhanced.length).trim() : rest;
    })
    .filter(Boolean)
    .join(' ')
    .replace(/\s+/g, ' ');
  return { code: Number(code), enhanced: agrees ? enhanced : `${code[0]}.0.0`, text };
}

export const isTemporary = (reply: StatusReply): boolean => reply.code >= 400 && reply.code < 500;

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
export function sessionFailure(err: SendError, hop: Hop, requireTLS: boolean): { reply: StatusReply; tlsFailed: boolean } {
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
export function transactionFailure(err: SendError, hop: Hop): StatusReply {
  if (err.code === 'EMESSAGE' && !err.responseCode && /size larger than allowed/i.test(err.message ?? '')) {
    return status(552, '5.3.4', `Message too large for ${hop.host}: ${err.message}`);
  }
  const own = err.responseCode ? parseReply(err.response) : null;
  if (own) return own;
  return status(451, '4.4.2', `Connection to ${at(hop)} lost during ${err.command ?? 'the transaction'} (${err.message ?? err.code ?? 'unknown error'})`);
}

/** "5.1.1 No such user" */
export const replyText = (reply: StatusReply): string => `${reply.enhanced} ${reply.text}`.trim();

/**
 * One reply for the whole message. Plain SMTP has one reply after DATA: when
 * some recipients were refused, answering 250 would drop them silently, so
 * the worst refusal is passed on, a temporary one first (a retry may
 * duplicate the copies already accepted: never lost).
 */
export function overallReply(recipients: RecipientReply[]): DeliveryReport {
  const each = recipients.map((r) => ({ ...r, address: r.recipient }));
  const refused = recipients.filter((r) => r.status === 'refused');
  if (refused.length === 0) {
    const texts = [...new Set(recipients.map((r) => r.reply.text))];
    return { code: 250, enhanced: '2.0.0', text: texts.join('; '), recipients: each };
  }
  const worst = refused.find((r) => isTemporary(r.reply)) ?? refused[0]!;
  const accepted = recipients.filter((r) => r.status === 'accepted').map((r) => r.recipient);
  const already = accepted.length ? ` (already accepted for ${accepted.join(', ')})` : '';
  const forWhom = recipients.length > 1 ? ` (for <${worst.recipient}>)` : '';
  return { ...smtpReply(worst.reply.code, `${replyText(worst.reply)}${forWhom}${already}`), recipients: each };
}
