// The normalized message as a list of pieces: new octets (header blocks),
// stretches of the source copied as they are, and stretches re-encoded on the
// way out. Nothing is encoded before it is written, so the plan for a huge
// message is as small as its MIME structure.
import { isAscii } from 'node:buffer';
import { chunks, type ByteSource, type Span } from '../../message/mime/source.ts';
import { spanHas8bit } from '../../message/mime/scan.ts';
import { Base64Encoder, Base64Rewrapper, decodeQuotedPrintable, encodeSpan, QpEncoder, type Output } from '../../message/mime/transfer-encoding.ts';

export type Coding =
  /** 7bit/8bit/binary content encoded as base64 */
  | 'base64'
  /** base64 content wrapped again at 76 */
  | 'rewrap-base64'
  /** 7bit/8bit/binary content encoded as quoted-printable */
  | 'quoted-printable'
  /** quoted-printable content decoded and encoded again */
  | 'requote';

export interface Coded {
  coding: Coding;
  span: Span;
  /** requote: when the output does not end in a CRLF, end it with a soft break, so it keeps the body's final CRLF */
  softBreakAtEnd?: boolean;
}

export type Piece = Buffer | Span | Coded;

const SOFT_BREAK = Buffer.from('=\r\n');

/** Whether a piece holds 8-bit octets; encoded pieces are 7-bit. */
export function pieceHas8bit(src: ByteSource, piece: Piece): boolean {
  if (Buffer.isBuffer(piece)) return piece.length > 0 && !isAscii(piece);
  if ('coding' in piece) return false;
  return spanHas8bit(src, piece);
}

export function writePieces(src: ByteSource, pieces: Piece[], out: Output): void {
  for (const piece of pieces) {
    if (Buffer.isBuffer(piece)) {
      if (piece.length > 0) out(piece);
    } else if ('coding' in piece) {
      writeCoded(src, piece, out);
    } else {
      for (const c of chunks(src, piece.start, piece.end)) out(c);
    }
  }
}

function writeCoded(src: ByteSource, piece: Coded, out: Output): void {
  switch (piece.coding) {
    case 'base64':
      return encodeSpan(src, piece.span, new Base64Encoder(out));
    case 'rewrap-base64':
      return encodeSpan(src, piece.span, new Base64Rewrapper(out));
    case 'quoted-printable':
      return encodeSpan(src, piece.span, new QpEncoder(out));
    case 'requote': {
      const encoder = new QpEncoder(out);
      decodeQuotedPrintable(src, piece.span, (decoded) => encoder.push(decoded));
      encoder.end();
      if (piece.softBreakAtEnd && !encoder.endsWithCrlf()) out(SOFT_BREAK);
    }
  }
}
