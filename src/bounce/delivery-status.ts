// The machine-readable part of a DSN: message/delivery-status (RFC 3464 §2),
// one block of per-message fields, then one block per recipient, blocks
// separated by an empty line. Every line is 7-bit and at most 78 octets where
// whitespace allows (never over 998), so the part passes any hop.
import { isIPv4, isIPv6 } from 'node:net';
import { rfc5322Date } from '../message/date.ts';
import { FOLD_AT, foldField } from '../message/mime/fold.ts';
import { originalRecipientValue, typedAddress } from './address-type.ts';
import { replyLine, type SmtpReply } from '../smtp/reply.ts';
import { recipientStatus, type DsnAction } from './status.ts';

export interface StatusRecipient {
  /** The RCPT TO address. */
  address: string;
  /** ORCPT as smtp-server gives it: "addr-type;address", xtext decoded, e.g. "rfc822;bob@example.net". */
  originalRecipient?: string | undefined;
  /** The receiving server's last reply, when one answered. */
  reply?: SmtpReply | undefined;
  /** Host name of the server that gave the reply. */
  remoteMta?: string | undefined;
  /** RFC 3463 status when the caller knows better than the reply (see recipientStatus). */
  status?: string | undefined;
  /** Given up after temporary failures because the message reached queue.maxAge. */
  expired?: boolean | undefined;
  lastAttempt: Date;
}

export interface DeliveryStatusReport {
  action: DsnAction;
  /** Our host name (listen.hostname). */
  reportingMta: string;
  /** ENVID of the original, xtext decoded. */
  envid?: string | null | undefined;
  arrival: Date;
  recipients: readonly StatusRecipient[];
  /** With delayed: when the queue gives up. */
  willRetryUntil?: Date | undefined;
}

/** Longest value kept: RFC 3461 allows 100 characters of ENVID and 500 of ORCPT; replies run to 512 a line. */
const MAX_TEXT = 900;

/** Printable ASCII and spaces only: control and 8-bit characters cannot start a field or break 7-bit. */
function text7bit(value: string): string {
  return value
    .replace(/[\t\r\n]+/g, ' ')
    .replace(/[^\x20-\x7e]/g, '?')
    .trim()
    .slice(0, MAX_TEXT);
}

/**
 * ENVID decoded is printable ASCII (RFC 3461 §4.4); anything else is put
 * back into xtext ("+HH") rather than dropped, so the sender can still match it.
 */
function envelopeId(envid: string): string {
  let out = '';
  for (const octet of Buffer.from(envid, 'utf8')) {
    out +=
      octet > 0x20 && octet < 0x7f && octet !== 0x2b && octet !== 0x3d ? String.fromCharCode(octet) : `+${octet.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out.slice(0, MAX_TEXT);
}

/**
 * RFC 3464 §2.3.5 Remote-MTA: "dns; host" when it is a host name or an
 * address; an address (a smart host given as one) as an RFC 5321 §4.1.3
 * address literal, "[192.0.2.1]" or "[IPv6:2001:db8::1]".
 */
function remoteMta(host: string | undefined): string | undefined {
  if (!host) return undefined;
  const name = isIPv4(host) ? `[${host}]` : isIPv6(host) ? `[IPv6:${host}]` : host.replace(/\.$/, '');
  return /^(?:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*|\[(?:IPv6:)?[0-9A-Fa-f.:]+\])$/.test(name) && name.length <= 255 ? `dns; ${name}` : undefined;
}

function field(name: string, value: string): string {
  return foldField(`${name}: ${value}`, FOLD_AT).raw + '\r\n';
}

/** The body of the message/delivery-status part. */
export function deliveryStatusBody(report: DeliveryStatusReport): string {
  let out = field('Reporting-MTA', `dns; ${text7bit(report.reportingMta)}`);
  if (report.envid) out += field('Original-Envelope-Id', envelopeId(report.envid));
  out += field('Arrival-Date', rfc5322Date(report.arrival));
  for (const r of report.recipients) {
    out += '\r\n';
    const original = originalRecipientValue(r.originalRecipient);
    if (original) out += field('Original-Recipient', original);
    out += field('Final-Recipient', typedAddress(r.address));
    out += field('Action', report.action);
    out += field('Status', recipientStatus(r, report.action));
    const mta = remoteMta(r.remoteMta);
    if (mta) out += field('Remote-MTA', mta);
    // RFC 3464 §2.3.6: the remote server's own words; our own problems go in the human part.
    if (r.reply) out += field('Diagnostic-Code', `smtp; ${text7bit(replyLine(r.reply))}`);
    out += field('Last-Attempt-Date', rfc5322Date(r.lastAttempt));
    if (report.action === 'delayed' && report.willRetryUntil) out += field('Will-Retry-Until', rfc5322Date(report.willRetryUntil));
  }
  return out;
}
