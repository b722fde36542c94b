// Line endings. SMTP and DKIM both speak CRLF; senders do not always.
// We sign exactly the bytes that go on the wire, and nodemailer rewrites
// bare CR and bare LF to CRLF when it relays, so we do it first.

const CR = 0x0d;
const LF = 0x0a;

/** A CR without the LF after it, or an LF without the CR before it. */
const BARE_LINE_END = /\r(?!\n)|(?<!\r)\n/;

/** The latin1 view is a copy: a whole message is looked at in slices of this size. */
export const BARE_LINE_END_SLICE = 1024 * 1024;

/**
 * Whether octets[from..] hold a bare CR or a bare LF (a CR at the very end
 * counts: no LF follows it here; an LF at `from` too: no CR precedes it
 * here). A regular-expression scan of a latin1 view, native code: a search
 * from JavaScript for each line end costs a call a line, three times as much
 * on text.
 */
export function hasBareLineEnd(octets: Buffer, from = 0): boolean {
  for (let start = from; start < octets.length;) {
    let end = Math.min(octets.length, start + BARE_LINE_END_SLICE);
    // A CR ending a slice would read as bare: it goes with the next slice, where its LF is.
    if (end < octets.length && octets[end - 1] === CR) end--;
    if (BARE_LINE_END.test(octets.toString('latin1', start, end))) return true;
    start = end;
  }
  return false;
}

/** True when every line ends in CRLF and the message ends with one. */
export function isCrlfClean(buf: Buffer): boolean {
  if (buf.length === 0) return true;
  return buf[buf.length - 2] === CR && buf[buf.length - 1] === LF && !hasBareLineEnd(buf);
}

/** Rewrites bare CR, bare LF and CRLF alike to CRLF and adds a final CRLF. */
export function toCrlf(buf: Buffer): Buffer {
  if (isCrlfClean(buf)) return buf;
  const out = Buffer.allocUnsafe(buf.length * 2 + 2);
  let o = rewriteLineEnds(buf, 0, out, 0);
  if (o > 0 && !(out[o - 2] === CR && out[o - 1] === LF)) {
    out[o++] = CR;
    out[o++] = LF;
  }
  return out.subarray(0, o);
}

/**
 * Copies buf[from..] to out[o..] with bare CR, bare LF and CRLF alike written
 * as CRLF; returns where the output ends. `out` needs twice the room.
 */
export function rewriteLineEnds(buf: Buffer, from: number, out: Buffer, o: number): number {
  for (let i = from; i < buf.length; i++) {
    const c = buf[i]!;
    if (c === CR) {
      if (buf[i + 1] === LF) i++;
      out[o++] = CR;
      out[o++] = LF;
    } else if (c === LF) {
      out[o++] = CR;
      out[o++] = LF;
    } else {
      out[o++] = c;
    }
  }
  return o;
}
