// What normalize() is asked to do, and what it answers.
import type { Findings } from '../../message/mime/scan.ts';
import type { SmtpReply } from '../../smtp/reply.ts';

export interface NormalizeOptions {
  addDate: boolean;
  addMessageId: boolean;
  longLines: 'reencode' | 'reject';
  /** Body parts holding NUL octets: re-encode them as base64, or refuse the message. */
  nul: 'reencode' | 'reject';
  refoldHeaders: boolean;
  /** Merge the copies of To, Cc, Bcc and Reply-To into one field each. */
  mergeDuplicates: boolean;
  /** The upstream takes 8-bit data; when false, 8-bit content is re-encoded to 7-bit. */
  eightBitMime: boolean;
  /** The upstream takes 8-bit header text (SMTPUTF8, RFC 6532); when false it is encoded. Unset: as eightBitMime. */
  smtpUtf8?: boolean;
  /** Domain for a new Message-ID (the signing domain, else the From: domain). */
  messageIdDomain: string;
  now?: Date;
  /**
   * What the scan made as the message arrived found in its body, the octets
   * from `start` to the end: trusted instead of scanning them again.
   */
  bodyFacts?: { start: number; findings: Findings } | undefined;
}

export type Normalized = { ok: true; message: Buffer; changes: string[] } | { ok: false; reply: SmtpReply };

export type NormalizedFile =
  | { ok: true; changed: false; changes: string[] }
  | { ok: true; changed: true; changes: string[]; header: Buffer; size: number }
  | { ok: false; reply: SmtpReply };
