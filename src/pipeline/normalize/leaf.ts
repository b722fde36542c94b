// Re-encoding one leaf part whose body would not survive transit: lines over
// 998 octets, 8-bit data for a 7-bit upstream, or NUL octets. Text stays
// readable as quoted-printable; anything else, and anything holding NUL (it is
// not text), becomes base64. Parts already encoded keep their encoding and are
// only re-wrapped (base64) or re-encoded (QP).
import { fieldsNamed } from '../../message/header.ts';
import type { ContentInfo } from '../../message/mime/content-type.ts';
import { appendField, setField, type Entity } from './header-block.ts';
import type { Piece } from './pieces.ts';
import { MAX_LINE_OCTETS, spanEscapes, spanIsUtf8 } from '../../message/mime/scan.ts';
import { inPart, Refusal } from './refusal.ts';
import { endsWithCrlf, type Span } from '../../message/mime/source.ts';
import type { Walk } from './walk.ts';

/** Why a body needs work, e.g. "8-bit data, line of 1204 octets". */
export interface Trouble {
  longest: number;
  eightBit: boolean;
  /** NUL octets, which RFC 2045 §2.7-2.8 allows in neither 7bit nor 8bit data. */
  nul: boolean;
  label: string;
}

export function describeTrouble(trouble: Trouble): string {
  const why: string[] = [];
  if (trouble.eightBit) why.push('8-bit data');
  if (trouble.nul) why.push('NUL octets');
  if (trouble.longest > MAX_LINE_OCTETS) why.push(`line of ${trouble.longest} octets`);
  return why.join(', ');
}

const CRLF = Buffer.from('\r\n');

/** The repairs a site switched off: the message is refused instead. */
function refuseWhenAsked(trouble: Trouble, walk: Walk): void {
  if (trouble.longest > MAX_LINE_OCTETS && walk.options.longLines === 'reject') {
    throw new Refusal(
      554,
      `5.6.0 Line of ${trouble.longest} octets in the body exceeds the 998 octets of RFC 5322; ` +
        'the sending application must wrap it or send it quoted-printable or base64',
    );
  }
  if (trouble.nul && walk.options.nul === 'reject') {
    throw new Refusal(
      554,
      `5.6.0 The ${trouble.label} holds NUL octets, which RFC 2045 forbids in 7bit and 8bit data; ` + 'the sending application must send it base64',
    );
  }
}

/**
 * Quoted-printable writes an escaped octet as three, base64 every three as
 * four: text that is mostly escaped octets (Cyrillic, Greek, CJK in UTF-8)
 * nearly triples as quoted-printable, and a message that grew so could
 * outgrow the size it was accepted at. Such text goes base64 when that is a
 * quarter smaller and a kilobyte at least; short text and Latin text with
 * accents stay quoted-printable, which keeps them readable.
 */
function qpOutgrowsBase64(walk: Walk, body: Span): boolean {
  const octets = body.end - body.start;
  const qp = octets + 2 * spanEscapes(walk.source, body);
  const base64 = Math.ceil(octets / 3) * 4;
  return qp > base64 * 1.25 && qp - base64 > 1024;
}

/** A 7bit/8bit/binary leaf: encode it and say so in its header. */
export function reencodeLeaf(entity: Entity, info: ContentInfo, kind: 'message' | 'part', path: string, trouble: Trouble, walk: Walk): Piece[] {
  refuseWhenAsked(trouble, walk);
  const { body, header } = entity;
  const qp = !trouble.nul && (info.type.startsWith('message/') || (info.type.startsWith('text/') && !qpOutgrowsBase64(walk, body)));
  // base64 carries the octets, final CRLF included; the body must still end
  // in a CRLF where it did (the end of the message, not before a delimiter).
  const encoded: Piece[] = qp
    ? [{ coding: 'quoted-printable', span: body }]
    : [{ coding: 'base64', span: body }, ...(endsWithCrlf(walk.source, body) ? [CRLF] : [])];
  const name = qp ? 'quoted-printable' : 'base64';
  walk.changes.push(`re-encoded ${trouble.label} as ${name} (${describeTrouble(trouble)})`);
  // RFC 2045 §4: without MIME-Version the encoding header means nothing to a reader.
  if (kind === 'message' && fieldsNamed(header.fields, 'MIME-Version').length === 0) {
    appendField(header, 'MIME-Version', '1.0');
    walk.changes.push(`added MIME-Version: 1.0${inPart(path)}`);
  }
  if (!info.declared) {
    // The default (us-ascii) would be wrong for 8-bit text now made 7-bit.
    const type = `text/plain; charset=${spanIsUtf8(walk.source, body) ? 'utf-8' : 'unknown-8bit'}`;
    appendField(header, 'Content-Type', type);
    walk.changes.push(`added Content-Type: ${type}${inPart(path)}`);
  }
  setField(header, 'Content-Transfer-Encoding', name);
  return encoded;
}

/** A base64 or quoted-printable leaf with long lines or stray 8-bit octets. */
export function reworkEncodedLeaf(entity: Entity, info: ContentInfo, trouble: Trouble, walk: Walk): Piece[] {
  refuseWhenAsked(trouble, walk);
  const { body } = entity;
  const tail = endsWithCrlf(walk.source, body);
  if (info.encoding === 'base64') {
    walk.changes.push(`re-wrapped base64 ${trouble.label} at 76 octets (${describeTrouble(trouble)})`);
    return [{ coding: 'rewrap-base64', span: body }, ...(tail ? [CRLF] : [])];
  }
  walk.changes.push(`re-encoded quoted-printable ${trouble.label} (${describeTrouble(trouble)})`);
  // a trailing soft break decodes to nothing and keeps the final CRLF
  return [{ coding: 'requote', span: body, softBreakAtEnd: tail }];
}
