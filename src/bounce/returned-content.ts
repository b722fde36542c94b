// The third part of a DSN: the original message, or only its header
// (RFC 3462 §2, now RFC 6522 §3). The DSN must reach any sender, so the part
// is 7-bit: message/rfc822 cannot be given a transfer encoding (RFC 2046
// §5.2.1), and an original that is not 7-bit safe goes back as its header
// alone, in text/rfc822-headers, quoted-printable when needed (RFC 6522 §4
// allows it "if the headers are broken and require encoding").
import { isUtf8 } from 'node:buffer';
import { splitMessage } from '../message/header.ts';
import { has8bit, hasNul, overlongLine } from '../message/mime/scan.ts';
import { toQuotedPrintable } from '../message/mime/transfer-encoding.ts';
import type { DsnAction } from './status.ts';

/** Why only the header went back. */
export type HeadersOnlyReason = 'requested' | 'delay' | 'size' | '8bit';

export type ReturnedContent = { kind: 'message'; part: Buffer } | { kind: 'headers'; reason: HeadersOnlyReason; part: Buffer };

export interface ReturnOptions {
  /** MAIL FROM's RET parameter: FULL, HDRS, or none. */
  ret?: string | null | undefined;
  action: DsnAction;
  /** Originals larger than this many octets go back as their header only. */
  limit: number;
  /** The original's size, when only its header block was read (it is larger than `limit`). */
  size?: number | undefined;
}

const CRLF = Buffer.from('\r\n');

/** The data with a final CRLF (added when missing). */
export function crlfEnded(data: Buffer): Buffer {
  return data.length === 0 || data.subarray(-2).equals(CRLF) ? data : Buffer.concat([data, CRLF]);
}

/**
 * The part's content, then the CRLF that belongs to the next delimiter
 * (RFC 2046 §5.1.1), so the returned octets keep their own final CRLF: the
 * header block stays whole, and the original's DKIM body hash still holds.
 */
const content = (head: string, data: Buffer): Buffer => Buffer.concat([Buffer.from(head, 'latin1'), data, CRLF]);

const unsafe = (data: Buffer): boolean => has8bit(data) || hasNul(data) || overlongLine(data) > 0;

/**
 * RET=HDRS asks for the header only. Without RET the choice is ours
 * (RFC 3461 §4.3): the whole message, within the size limit, so the sender
 * sees what went wrong. RET governs failure notices; a delay notice carries
 * the header only, as the message is still on its way.
 */
export function returnedContent(original: Buffer, options: ReturnOptions): ReturnedContent {
  const full = crlfEnded(original);
  let reason: HeadersOnlyReason | undefined;
  if (options.action === 'delayed') reason = 'delay';
  else if (options.ret?.toUpperCase() === 'HDRS') reason = 'requested';
  else if (Math.max(full.length, options.size ?? 0) > options.limit) reason = 'size';
  else if (unsafe(full)) reason = '8bit';

  if (reason === undefined) {
    const head = 'Content-Type: message/rfc822\r\nContent-Description: Undelivered Message\r\nContent-Transfer-Encoding: 7bit\r\n\r\n';
    return { kind: 'message', part: content(head, full) };
  }
  const header = crlfEnded(splitMessage(original).header);
  const description = `Content-Description: ${options.action === 'delayed' ? 'Delayed' : 'Undelivered'} Message Headers\r\n`;
  if (!unsafe(header)) {
    const head = `Content-Type: text/rfc822-headers\r\n${description}Content-Transfer-Encoding: 7bit\r\n\r\n`;
    return { kind: 'headers', reason, part: content(head, header) };
  }
  // RFC 6532 header text is UTF-8; anything else has no charset we could name (RFC 1428).
  const charset = isUtf8(header) ? 'utf-8' : 'unknown-8bit';
  const head = `Content-Type: text/rfc822-headers; charset=${charset}\r\n${description}Content-Transfer-Encoding: quoted-printable\r\n\r\n`;
  return { kind: 'headers', reason, part: content(head, crlfEnded(toQuotedPrintable(header))) };
}
