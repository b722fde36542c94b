// Finds the body parts of a multipart (RFC 2046 §5.1.1). Only the part
// contents are located; preamble, delimiter lines and epilogue are the octets
// between them and are copied untouched. One forward pass, no regexes, so
// hostile input costs time in proportion to its size.
import { bufferSource, indexOf, octetAt, skipWhile, type ByteSource, type Span } from '../../message/mime/source.ts';

export interface PartSpan {
  /** First octet of the part (its header), just after the delimiter line. */
  start: number;
  /** End of the part: the CRLF before the next delimiter belongs to the delimiter. */
  end: number;
}

export interface MultipartLayout {
  parts: PartSpan[];
  /** Whether a close delimiter "--boundary--" was found. */
  closed: boolean;
}

const isWsp = (c: number): boolean => c === 0x20 || c === 0x09;
const CRLF = Buffer.from('\r\n');

/** Null when no delimiter line for this boundary occurs. */
export function splitMultipart(body: Buffer, boundary: string): MultipartLayout | null {
  return findParts(bufferSource(body), { start: 0, end: body.length }, boundary);
}

/** As splitMultipart, over a stretch of a source; the spans are offsets in the source. */
export function findParts(src: ByteSource, body: Span, boundary: string): MultipartLayout | null {
  const dash = Buffer.from(`--${boundary}`, 'latin1');
  const needle = Buffer.from(`\r\n--${boundary}`, 'latin1');
  const { start, end } = body;
  const parts: PartSpan[] = [];
  let partStart = -1;
  let seen = false;
  const opens = end - start >= dash.length && src.read(start, start + dash.length).equals(dash);
  let candidate = opens ? start : nextCandidate(src, needle, start, end);
  while (candidate >= 0) {
    let lineEnd = indexOf(src, CRLF, candidate + dash.length, end);
    if (lineEnd < 0) lineEnd = end;
    let p = candidate + dash.length;
    const close = octetAt(src, p, end) === 0x2d && octetAt(src, p + 1, end) === 0x2d;
    if (!close) p = skipWhile(src, p, lineEnd, isWsp);
    // "--b" followed by anything but transport padding is content, not a delimiter.
    if (close || p === lineEnd) {
      seen = true;
      const partEnd = candidate === start ? start : candidate - 2;
      if (partStart >= 0 && partEnd >= partStart) parts.push({ start: partStart, end: partEnd });
      if (close) return { parts, closed: true };
      partStart = Math.min(lineEnd + 2, end);
    }
    candidate = nextCandidate(src, needle, lineEnd, end);
  }
  if (!seen) return null;
  if (partStart >= 0 && partStart < end) parts.push({ start: partStart, end });
  return { parts, closed: false };
}

function nextCandidate(src: ByteSource, needle: Buffer, from: number, end: number): number {
  const at = indexOf(src, needle, from, end);
  return at < 0 ? -1 : at + 2;
}
