// A delivery status notification (RFC 3464) to the envelope sender: a
// multipart/report; report-type=delivery-status message (RFC 6522) of three
// parts: a notice for people, the message/delivery-status report, and the
// original message or its header. It is an ordinary 7-bit message with
// CRLF lines of at most 998 octets, signed like any other before it leaves.
import { randomUUID } from 'node:crypto';
import { rfc5322Date } from '../message/date.ts';
import { newMessageId } from '../message/mime/missing-fields.ts';
import { overlongLine } from '../message/mime/scan.ts';
import { toQuotedPrintable } from '../message/mime/transfer-encoding.ts';
import { deliveryStatusBody, type StatusRecipient } from './delivery-status.ts';
import { noticeText } from './notice-text.ts';
import type { SmtpReply } from '../smtp/reply.ts';
import { quoteReplies } from './reply-quote.ts';
import { crlfEnded, returnedContent } from './returned-content.ts';
import type { DsnAction } from './status.ts';

export type { DsnAction } from './status.ts';
export type { SmtpReply } from '../smtp/reply.ts';

/** A recipient the notice is about: its delivery-status fields, and the problem in words when no server answered. */
export interface DsnRecipient extends StatusRecipient {
  problem?: string | undefined;
}

export interface DsnRequest {
  /** failed: given up on these recipients; delayed: still trying. */
  action: DsnAction;
  /** The recipients this notice is about, all with the same action; at least one. */
  recipients: readonly DsnRecipient[];
  /** The message as the relay accepted it, CRLF lines; or only its header block, when it is larger than returnContentLimit. */
  original: Buffer;
  /** The size of the whole original, when `original` is its header block only. */
  originalSize?: number | undefined;
  envelope: {
    /** MAIL FROM of the original: the DSN goes to it. Never empty (see suppression.ts). */
    sender: string;
    /** ENVID, xtext decoded. */
    envid?: string | null | undefined;
    /** RET: "FULL", "HDRS" or none. */
    ret?: string | null | undefined;
    /** When the relay accepted the message. */
    arrival: Date;
  };
  /** Our host name, for Reporting-MTA (listen.hostname). */
  reportingMta: string;
  /** The From: address of the notice (bounce.from, see bounceFromAddress). */
  from: string;
  /** Originals larger than this (octets) go back as their header only (bounce.returnContentLimit). */
  returnContentLimit: number;
  /** Now: the notice's Date:. */
  date: Date;
  /** For delayed: when the queue gives up. */
  willRetryUntil?: Date | undefined;
  /** Message-ID of the notice, "<…>"; default a fresh one at the domain of `from`. */
  messageId?: string | undefined;
}

export interface Dsn {
  /** The notice's own envelope sender is null (RFC 3461 §6.2, RFC 5321 §4.5.5): no bounce of a bounce. */
  mailFrom: '';
  /** Its one recipient: the original's envelope sender. */
  rcptTo: string;
  /** True when rcptTo is not ASCII: the notice's To: holds it as UTF-8 (RFC 6532), so it needs SMTPUTF8. */
  smtpUtf8: boolean;
  /** Whether the original went back whole or as its header. */
  returned: 'message' | 'headers';
  /** The whole notice, CRLF lines, ready to sign. */
  message: Buffer;
}

export const SUBJECT: Record<DsnAction, string> = {
  failed: 'Undelivered Mail Returned to Sender',
  delayed: 'Delivery Status Notification (Delay)',
};

const DISPLAY_NAME = 'Mail Delivery System';

/** An envelope address inside <>: control characters and the brackets themselves cannot occur. */
const bracketed = (address: string): string => `<${address.replace(/[\x00-\x1f\x7f<>]/g, '')}>`;

function humanPart(text: string): Buffer {
  const data = Buffer.from(text, 'utf8');
  // 7bit when it is, quoted-printable otherwise (RFC 2045 §6.7): recipients' and servers' words may be UTF-8.
  const plain = data.every((c) => c < 0x80) && overlongLine(data) === 0;
  const head =
    'Content-Type: text/plain; charset=utf-8\r\nContent-Description: Notification\r\n' +
    `Content-Transfer-Encoding: ${plain ? '7bit' : 'quoted-printable'}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), plain ? data : toQuotedPrintable(data)]);
}

function boundaryFor(parts: Buffer[]): string {
  // A boundary must not occur in the parts (RFC 2046 §5.1.1); a fresh UUID practically never does.
  for (let i = 0; i < 5; i++) {
    const boundary = `=_dsn_${randomUUID()}`;
    if (!parts.some((p) => p.includes(boundary, 0, 'latin1'))) return boundary;
  }
  throw new Error('no MIME boundary found that the returned message does not contain');
}

/** Builds the notice. Throws on a request no caller should make (no recipients, null sender). */
export function buildDsn(req: DsnRequest): Dsn {
  if (req.recipients.length === 0) throw new Error('a DSN needs at least one recipient');
  const sender = req.envelope.sender.replace(/^<|>$/g, '');
  if (sender === '') throw new Error('a DSN is never sent to the null sender');
  if (req.action === 'delayed' && !req.willRetryUntil) throw new Error('a delay DSN needs willRetryUntil');

  // The servers' words are a stranger's data in a signed message: inert and bounded first.
  const recipients = quoteReplies(req.recipients);
  const returned = returnedContent(req.original, { ret: req.envelope.ret, action: req.action, limit: req.returnContentLimit, size: req.originalSize });
  const notice = noticeText({
    action: req.action,
    reportingMta: req.reportingMta,
    arrival: req.envelope.arrival,
    recipients,
    willRetryUntil: req.willRetryUntil,
    returned,
    limit: req.returnContentLimit,
  });
  const status = deliveryStatusBody({
    action: req.action,
    reportingMta: req.reportingMta,
    envid: req.envelope.envid,
    arrival: req.envelope.arrival,
    recipients,
    willRetryUntil: req.willRetryUntil,
  });
  const parts = [
    humanPart(notice),
    Buffer.from(`Content-Type: message/delivery-status\r\nContent-Description: Delivery report\r\nContent-Transfer-Encoding: 7bit\r\n\r\n${status}`, 'latin1'),
    returned.part,
  ];
  const boundary = boundaryFor(parts);
  const fromDomain = req.from.slice(req.from.lastIndexOf('@') + 1);
  const header = [
    `From: ${DISPLAY_NAME} <${req.from}>`,
    `To: ${bracketed(sender)}`,
    `Subject: ${SUBJECT[req.action]}`,
    `Date: ${rfc5322Date(req.date)}`,
    `Message-ID: ${req.messageId ?? newMessageId(fromDomain)}`,
    'MIME-Version: 1.0',
    // RFC 3834 §5: the notice answers a message automatically; no one should answer it in turn.
    'Auto-Submitted: auto-replied',
    `Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="${boundary}"`,
    'Content-Transfer-Encoding: 7bit',
  ].join('\r\n');
  const chunks: Buffer[] = [Buffer.from(`${header}\r\n\r\nThis is a MIME-encapsulated message.\r\n`, 'utf8')];
  // Each part ends in CRLF, which belongs to the delimiter after it (RFC 2046 §5.1.1).
  for (const part of parts) chunks.push(Buffer.from(`--${boundary}\r\n`, 'latin1'), crlfEnded(part));
  chunks.push(Buffer.from(`--${boundary}--\r\n`, 'latin1'));
  return {
    mailFrom: '',
    rcptTo: sender,
    smtpUtf8: /[^\x00-\x7f]/.test(sender),
    returned: returned.kind,
    message: Buffer.concat(chunks),
  };
}
