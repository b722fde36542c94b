// Finds the body parts of a multipart (RFC 2046 §5.1.1). Only the part
// contents are located; preamble, delimiter lines and epilogue are the octets
// between them and are copied untouched. One forward pass, no regexes, so
// hostile input costs time in proportion to its size.

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

const isWsp = (c: number | undefined): boolean => c === 0x20 || c === 0x09;

/** Null when no delimiter line for this boundary occurs. */
export function splitMultipart(body: Buffer, boundary: string): MultipartLayout | null {
  const dash = Buffer.from(`--${boundary}`, 'latin1');
  const needle = Buffer.from(`\r\n--${boundary}`, 'latin1');
  const parts: PartSpan[] = [];
  let partStart = -1;
  let seen = false;
  let from = 0;
  let candidate = body.subarray(0, dash.length).equals(dash) ? 0 : nextCandidate(body, needle, 0);
  while (candidate >= 0) {
    let lineEnd = body.indexOf('\r\n', candidate + dash.length, 'latin1');
    if (lineEnd < 0) lineEnd = body.length;
    let p = candidate + dash.length;
    const close = body[p] === 0x2d && body[p + 1] === 0x2d;
    if (!close) while (p < lineEnd && isWsp(body[p])) p++;
    // "--b" followed by anything but transport padding is content, not a delimiter.
    if (close || p === lineEnd) {
      seen = true;
      const end = candidate === 0 ? 0 : candidate - 2;
      if (partStart >= 0 && end >= partStart) parts.push({ start: partStart, end });
      if (close) return { parts, closed: true };
      partStart = Math.min(lineEnd + 2, body.length);
    }
    from = lineEnd;
    candidate = nextCandidate(body, needle, from);
  }
  if (!seen) return null;
  if (partStart >= 0 && partStart < body.length) parts.push({ start: partStart, end: body.length });
  return { parts, closed: false };
}

function nextCandidate(body: Buffer, needle: Buffer, from: number): number {
  const at = body.indexOf(needle, from);
  return at < 0 ? -1 : at + 2;
}
