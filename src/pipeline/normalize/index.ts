// Pre-sign normalization: make the message survive every hop unchanged, so
// the DKIM signature made next stays valid (RFC 6376 §5.3).
// A hop may break lines over 998 octets or downgrade 8-bit data to 7-bit
// after we signed; we do it first, the same way, and sign the result. NUL
// octets, which RFC 2045 allows in no unencoded body, are read differently by
// different verifiers, so the parts holding them are encoded too.
//
// The common case is a message that needs nothing: one scan, and the very
// same Buffer comes back.
import { fieldsNamed, splitMessage } from '../../message/header.ts';
import { normalizeEntity } from './entity.ts';
import { appendField, entityChunks, readEntity, replaceRaw } from './header-block.ts';
import { duplicatedAddressFields, mergeDuplicates } from './merge-duplicates.ts';
import { newMessageId, rfc5322Date } from './missing-fields.ts';
import { Refusal } from './refusal.ts';
import { has8bit, hasNul, overlongLine, unsafeForTransit } from './scan.ts';
import type { Walk } from './walk.ts';

const SPACE_BEFORE_COLON = /^([!-9;-~]+)[ \t]+:/;

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
}

export type Normalized = { ok: true; message: Buffer; changes: string[] } | { ok: false; code: number; text: string };

/** `message` is CRLF (see toCrlf). Never throws: a problem comes back as an SMTP reply. */
export function normalize(message: Buffer, options: NormalizeOptions): Normalized {
  try {
    return run(message, options);
  } catch (err) {
    if (err instanceof Refusal) return { ok: false, code: err.code, text: replyText(err.message) };
    // A bug here must not lose mail: the client keeps the message and retries.
    const why = err instanceof Error ? err.message : String(err);
    return { ok: false, code: 451, text: replyText(`4.3.0 Could not prepare the message for signing (${why}), try again later`) };
  }
}

/** SMTP reply text quotes the message: printable ASCII only, and short (RFC 5321 §4.5.3.1.5). */
function replyText(text: string): string {
  const ascii = text.replace(/[^\x20-\x7e]/g, '?');
  return ascii.length > 400 ? `${ascii.slice(0, 397)}...` : ascii;
}

function run(message: Buffer, options: NormalizeOptions): Normalized {
  const changes: string[] = [];
  const top = readEntity(message);
  if (typeof top === 'string') throw new Refusal(554, `5.6.0 Malformed header: ${top}`);
  const fields = top.header.fields;
  const needDate = options.addDate && fieldsNamed(fields, 'Date').length === 0;
  const needId = options.addMessageId && fieldsNamed(fields, 'Message-ID').length === 0;
  // "To : x" is obsolete syntax (RFC 5322 §4.5) that some verifiers (dkimpy)
  // refuse to parse at all; relaxed canonicalization reads both forms alike.
  const spaced = fields.filter((f) => SPACE_BEFORE_COLON.test(f.raw));
  const duplicated = options.mergeDuplicates ? duplicatedAddressFields(top.header) : [];
  const unsafe = unsafeForTransit(message, options.eightBitMime) || (!(options.smtpUtf8 ?? options.eightBitMime) && has8bit(top.header.original));
  if (!unsafe && !needDate && !needId && spaced.length === 0 && duplicated.length === 0) return { ok: true, message, changes };
  for (const field of spaced) {
    replaceRaw(top.header, field, field.raw.replace(SPACE_BEFORE_COLON, '$1:'));
    changes.push(`removed the space before the colon of ${field.name}:`);
  }

  const walk: Walk = { options, changes };
  for (const name of duplicated) mergeDuplicates(top.header, name, walk);
  const body = unsafe ? normalizeEntity(top, '', 'message', 'text/plain', 0, walk) : null;
  // Appended after the last field, not prepended: the top of the header is
  // where trace fields (Received:, and our DKIM-Signature:) go, newest first
  // (RFC 5321 §4.4), and an originator field above them would read as trace.
  // Appending also leaves every existing field, and their order, as they were.
  if (needDate) {
    appendField(top.header, 'Date', rfc5322Date(options.now ?? new Date()));
    changes.push('added Date:');
  }
  if (needId) {
    appendField(top.header, 'Message-ID', newMessageId(options.messageIdDomain));
    changes.push('added Message-ID:');
  }
  if (changes.length === 0) return { ok: true, message, changes };
  const out = Buffer.concat(entityChunks(top, body));
  // Belt and braces: never sign something a hop would still have to change.
  const longest = overlongLine(out);
  const nulLeft = hasNul(splitMessage(out).body);
  if (longest > 0 || (!options.eightBitMime && has8bit(out)) || nulLeft) {
    const why = longest > 0 ? `a line of ${longest} octets is left` : nulLeft ? 'a NUL octet is left' : '8-bit data is left';
    throw new Refusal(554, `5.6.0 The message could not be made safe for transit (${why})`);
  }
  return { ok: true, message: out, changes };
}
