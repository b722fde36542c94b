// Quoted-printable and base64 bodies (RFC 2045 §6.7, §6.8). Encoding is
// nodemailer's; decoding QP is ours, as nodemailer has no decoder. All output
// lines are at most 76 octets and 7-bit.
import { base64Encode, base64Wrap, qpEncode, qpWrap } from '../../nodemailer-internals.ts';

const LINE = 76;
const LONE_CR_OR_LF = /\r(?!\n)|(?<!\r)\n/g;

/** Slices end at a CRLF, where a QP line ends anyway, so they encode independently. */
const SLICE = 64 * 1024;

export function toQuotedPrintable(data: Buffer): Buffer {
  const out: Buffer[] = [];
  for (let start = 0; start < data.length; ) {
    const crlf = start + SLICE >= data.length ? -1 : data.indexOf('\r\n', start + SLICE, 'latin1');
    const end = crlf < 0 ? data.length : crlf + 2;
    out.push(encodeSlice(data.subarray(start, end)));
    start = end;
  }
  return Buffer.concat(out);
}

function encodeSlice(data: Buffer): Buffer {
  let text = qpEncode(data);
  // nodemailer writes CR and LF as they are. Only CRLF is a line break in a
  // message; a lone one (decoded QP can hold it) is data and must be escaped,
  // or the next hop would turn it into a CRLF.
  if (LONE_CR_OR_LF.test(text)) text = text.replace(LONE_CR_OR_LF, (c) => (c === '\r' ? '=0D' : '=0A'));
  LONE_CR_OR_LF.lastIndex = 0;
  return Buffer.from(qpWrap(text, LINE), 'latin1');
}

export function toBase64(data: Buffer): Buffer {
  return Buffer.from(base64Wrap(base64Encode(data), LINE), 'latin1');
}

const BASE64_ALPHABET = new Uint8Array(256);
for (const c of Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=', 'latin1')) BASE64_ALPHABET[c] = 1;

/**
 * Base64 text with new line breaks. Decoders ignore everything outside the
 * alphabet (RFC 2045 §6.8), so dropping it — old line breaks, stray 8-bit
 * octets — and wrapping again keeps the decoded content exactly.
 */
export function rewrapBase64(data: Buffer): Buffer {
  const clean = Buffer.allocUnsafe(data.length);
  let o = 0;
  for (let i = 0; i < data.length; i++) {
    const c = data[i]!;
    if (BASE64_ALPHABET[c]) clean[o++] = c;
  }
  return Buffer.from(base64Wrap(clean.toString('latin1', 0, o), LINE), 'latin1');
}

const HEX = new Int8Array(256).fill(-1);
for (let i = 0; i < 16; i++) {
  HEX[0x30 + i] = i < 10 ? i : -1;
  if (i >= 10) {
    HEX[0x41 + i - 10] = i;
    HEX[0x61 + i - 10] = i;
  }
}

/**
 * Decodes quoted-printable leniently, as mail readers do: "=XX" in either case,
 * "=" at the end of a line is a soft break, trailing whitespace on a line was
 * added in transit and is dropped (§6.7 rule 3), and a stray "=" is itself.
 */
export function fromQuotedPrintable(data: Buffer): Buffer {
  const out = Buffer.allocUnsafe(data.length);
  let o = 0;
  let start = 0;
  const n = data.length;
  while (start < n) {
    const lf = data.indexOf(0x0a, start);
    const lineEnd = lf < 0 ? n : lf > start && data[lf - 1] === 0x0d ? lf - 1 : lf;
    const next = lf < 0 ? n : lf + 1;
    let end = lineEnd;
    while (end > start && (data[end - 1] === 0x20 || data[end - 1] === 0x09)) end--;
    const soft = end > start && data[end - 1] === 0x3d;
    if (soft) end--;
    for (let i = start; i < end; i++) {
      const c = data[i]!;
      if (c === 0x3d && i + 2 < end) {
        const hi = HEX[data[i + 1]!]!;
        const lo = HEX[data[i + 2]!]!;
        if (hi >= 0 && lo >= 0) {
          out[o++] = hi * 16 + lo;
          i += 2;
          continue;
        }
      }
      out[o++] = c;
    }
    // keep the hard line break as it was written
    if (!soft) for (let i = lineEnd; i < next; i++) out[o++] = data[i]!;
    start = next;
  }
  return out.subarray(0, o);
}
