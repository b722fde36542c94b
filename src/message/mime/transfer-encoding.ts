// Quoted-printable and base64 bodies (RFC 2045 §6.7, §6.8). Base64 is
// libbase64's; QP encoding is nodemailer's (see nodemailer-internals.ts why
// not libqp's); decoding QP is ours. All output lines are at most 76
// octets and 7-bit.
//
// Every coder takes its input a piece at a time and keeps only a bounded
// carry between pieces, so a body of any size, even a single line of many
// megabytes, is coded in fixed memory. The output does not depend on how the
// input was cut into pieces.
import { encode as base64Encode, wrap as base64Wrap } from 'libbase64';
import { qpEncode, qpWrap } from '../../smtp/nodemailer-internals.ts';
import { chunks, indexOf, octetAt, WINDOW, type ByteSource, type Span } from './source.ts';

const LINE = 76;
const LONE_CR_OR_LF = /\r(?!\n)|(?<!\r)\n/g;
const CRLF = Buffer.from('\r\n');
const LF = 0x0a;
const CR = 0x0d;
const isWsp = (c: number | undefined): boolean => c === 0x20 || c === 0x09;

export type Output = (octets: Buffer) => void;

export interface Encoder {
  push(data: Buffer): void;
  end(): void;
}

/**
 * Text is encoded and wrapped in slices of this many octets, each ending at
 * the first CRLF past it (a QP line ends there anyway), and each slice is
 * wrapped on its own. A line longer than a slice is taken in pieces; only the
 * output lines whose wrapping cannot depend on what follows are written, the
 * rest is carried, so the result is as if the slice were wrapped at once.
 */
const SLICE = 64 * 1024;

/**
 * nodemailer's wrap() leaves a text of at most 76 characters as it is, where
 * the same characters at the end of a longer text may get a soft break. Put
 * behind these complete lines, a carried rest is wrapped as the end of its
 * slice would be.
 */
const LEAD = 'x\r\n'.repeat(26);

export class QpEncoder implements Encoder {
  private pending: Buffer[] = [];
  private pendingLength = 0;
  /** Input offset of the first pending octet, and of the slice it belongs to. */
  private pendingAt = 0;
  private sliceAt = 0;
  /** Encoded text not written yet; it starts an output line. */
  private carry = '';
  /** Whether the carry (or, when empty, the next pending octet) starts a slice. */
  private carryStartsSlice = true;
  private last2 = '';

  private readonly out: Output;
  constructor(out: Output) {
    this.out = out;
  }

  push(data: Buffer): void {
    for (let at = 0; at < data.length; at += SLICE) {
      const piece = data.subarray(at, Math.min(data.length, at + SLICE));
      this.pending.push(piece);
      this.pendingLength += piece.length;
      if (this.pendingLength >= SLICE) this.drain(false);
    }
  }

  end(): void {
    this.drain(true);
  }

  /** Whether the output so far ends with a CRLF. */
  endsWithCrlf(): boolean {
    return this.last2 === '\r\n';
  }

  private drain(final: boolean): void {
    const buf = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    const base = this.pendingAt;
    let pos = 0;
    for (;;) {
      const boundary = buf.indexOf(CRLF, Math.max(pos, this.sliceAt + SLICE - base));
      if (boundary >= 0) {
        this.whole(buf.subarray(pos, boundary + 2), false);
        pos = boundary + 2;
        this.sliceAt = base + pos;
        this.carryStartsSlice = true;
        continue;
      }
      if (final) {
        this.whole(buf.subarray(pos), true);
        pos = buf.length;
        break;
      }
      if (buf.length - pos < SLICE) break;
      const lastCrlf = buf.lastIndexOf(CRLF);
      if (lastCrlf >= pos) {
        this.whole(buf.subarray(pos, lastCrlf + 2), false);
        pos = lastCrlf + 2;
        this.carryStartsSlice = false;
        continue;
      }
      // One line longer than a slice: all of it but the last octet, which
      // tells how the octet before it is encoded.
      this.part(buf.subarray(pos, buf.length - 1), buf[buf.length - 1]!);
      pos = buf.length - 1;
      break;
    }
    const rest = buf.subarray(pos);
    this.pending = rest.length > 0 ? [rest] : [];
    this.pendingLength = rest.length;
    this.pendingAt = base + pos;
  }

  /** Text that ends with a CRLF, or the end of the input: every output line is final. */
  private whole(data: Buffer, final: boolean): void {
    const text = this.carry + encodeText(data, undefined);
    const wrapped = final && text.length <= LINE && !this.carryStartsSlice ? qpWrap(LEAD + text, LINE).slice(LEAD.length) : qpWrap(text, LINE);
    this.carry = '';
    this.emit(wrapped);
  }

  /** Part of a long line: writes the output lines that more text could not change. */
  private part(data: Buffer, next: number): void {
    const text = this.carry + encodeText(data, next);
    const wrapped = qpWrap(text, LINE);
    // Walk the output lines back to the text they came from. A soft break is
    // the only "=" before a CRLF: the encoder writes "=" itself as "=3D".
    let inAt = 0;
    let outAt = 0;
    for (;;) {
      const nl = wrapped.indexOf('\n', outAt);
      // a line is settled when wrap() saw a full line's worth of text after its start
      if (nl < 0 || inAt + LINE >= text.length) break;
      const soft = wrapped.charCodeAt(nl - 2) === 0x3d;
      inAt += nl + 1 - outAt - (soft ? 3 : 0);
      outAt = nl + 1;
    }
    this.carry = text.slice(inAt);
    this.carryStartsSlice = false;
    this.emit(wrapped.slice(0, outAt));
  }

  private emit(text: string): void {
    if (text.length === 0) return;
    this.last2 = (this.last2 + text.slice(-2)).slice(-2);
    this.out(Buffer.from(text, 'latin1'));
  }
}

/**
 * QP text for these octets. `next` is the octet after them, when more input
 * follows: whitespace before it is then written as it is, as it would be
 * in the middle of the text.
 */
function encodeText(data: Buffer, next: number | undefined): string {
  let text = qpEncode(data);
  // nodemailer writes CR and LF as they are. Only CRLF is a line break in a
  // message; a lone one (decoded QP can hold it) is data and must be escaped,
  // or the next hop would turn it into a CRLF.
  text = text.replace(LONE_CR_OR_LF, (c) => (c === '\r' ? '=0D' : '=0A'));
  const lastOctet = data[data.length - 1];
  if (next !== undefined && next !== CR && next !== LF && isWsp(lastOctet)) text = text.slice(0, -3) + String.fromCharCode(lastOctet!);
  return text;
}

/** Lines of 76 base64 characters with a CRLF between them (none after the last), as libbase64 wraps them. */
class Base64Lines {
  private started = false;
  private readonly out: Output;
  constructor(out: Output) {
    this.out = out;
  }

  /** `text` is whole lines, or the last line at the end. */
  write(text: string): void {
    if (text.length === 0) return;
    this.out(Buffer.from((this.started ? '\r\n' : '') + base64Wrap(text, LINE), 'latin1'));
    this.started = true;
  }
}

/** Whole lines of base64 take this many octets. */
const LINE_OCTETS = (LINE / 4) * 3;

export class Base64Encoder implements Encoder {
  private held: Buffer = Buffer.alloc(0);
  private readonly lines: Base64Lines;

  constructor(out: Output) {
    this.lines = new Base64Lines(out);
  }

  push(data: Buffer): void {
    const buf = this.held.length > 0 ? Buffer.concat([this.held, data]) : data;
    const whole = buf.length - (buf.length % LINE_OCTETS);
    this.lines.write(base64Encode(buf.subarray(0, whole)));
    this.held = Buffer.from(buf.subarray(whole));
  }

  end(): void {
    this.lines.write(base64Encode(this.held));
    this.held = Buffer.alloc(0);
  }
}

const BASE64_ALPHABET = new Uint8Array(256);
for (const c of Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=', 'latin1')) BASE64_ALPHABET[c] = 1;

/**
 * Base64 text with new line breaks. Decoders ignore everything outside the
 * alphabet (RFC 2045 §6.8), so dropping it — old line breaks, stray 8-bit
 * octets — and wrapping again keeps the decoded content exactly.
 */
export class Base64Rewrapper implements Encoder {
  private held = '';
  private readonly lines: Base64Lines;

  constructor(out: Output) {
    this.lines = new Base64Lines(out);
  }

  push(data: Buffer): void {
    const clean = Buffer.allocUnsafe(data.length);
    let o = 0;
    for (let i = 0; i < data.length; i++) {
      const c = data[i]!;
      if (BASE64_ALPHABET[c]) clean[o++] = c;
    }
    const text = this.held + clean.toString('latin1', 0, o);
    const whole = text.length - (text.length % LINE);
    this.lines.write(text.slice(0, whole));
    this.held = text.slice(whole);
  }

  end(): void {
    this.lines.write(this.held);
    this.held = '';
  }
}

const HEX = new Int8Array(256).fill(-1);
for (let i = 0; i < 16; i++) {
  HEX[0x30 + i] = i < 10 ? i : -1;
  if (i >= 10) {
    HEX[0x41 + i - 10] = i;
    HEX[0x61 + i - 10] = i;
  }
}

/** Collects octets and hands them on a full buffer at a time. */
class Collector {
  private buf = Buffer.allocUnsafe(WINDOW);
  private n = 0;
  private readonly out: Output;
  constructor(out: Output) {
    this.out = out;
  }

  put(c: number): void {
    if (this.n === this.buf.length) this.flush();
    this.buf[this.n++] = c;
  }

  flush(): void {
    if (this.n === 0) return;
    this.out(this.buf.subarray(0, this.n));
    this.buf = Buffer.allocUnsafe(WINDOW);
    this.n = 0;
  }
}

const LF_NEEDLE = Buffer.from([LF]);

/**
 * Decodes quoted-printable leniently, as mail readers do: "=XX" in either case,
 * "=" at the end of a line is a soft break, trailing whitespace on a line was
 * added in transit and is dropped (§6.7 rule 3), and a stray "=" is itself.
 * One line at a time, a long one a window at a time.
 */
export function decodeQuotedPrintable(src: ByteSource, span: Span, out: Output): void {
  const collect = new Collector(out);
  for (let start = span.start; start < span.end;) {
    const lf = indexOf(src, LF_NEEDLE, start, span.end);
    const lineEnd = lf < 0 ? span.end : lf > start && octetAt(src, lf - 1) === CR ? lf - 1 : lf;
    const next = lf < 0 ? span.end : lf + 1;
    let end = trimWhitespace(src, start, lineEnd);
    const soft = end > start && octetAt(src, end - 1) === 0x3d;
    if (soft) end--;
    decodeStretch(src, start, end, collect);
    // keep the hard line break as it was written
    if (!soft) for (let i = lineEnd; i < next; i++) collect.put(octetAt(src, i)!);
    start = next;
  }
  collect.flush();
}

/** The end of [start, end) without its trailing spaces and tabs. */
function trimWhitespace(src: ByteSource, start: number, end: number): number {
  while (end > start) {
    const view = src.read(Math.max(start, end - 256), end);
    let i = view.length;
    while (i > 0 && isWsp(view[i - 1])) i--;
    if (i > 0) return end - view.length + i;
    end -= view.length;
  }
  return start;
}

function decodeStretch(src: ByteSource, start: number, end: number, collect: Collector): void {
  for (let at = start; at < end;) {
    const viewEnd = Math.min(end, at + WINDOW);
    const view = src.read(at, viewEnd);
    // an escape needs its two digits in this view, unless the stretch ends here
    const limit = viewEnd === end ? view.length : view.length - 2;
    let i = 0;
    for (; i < limit; i++) {
      const c = view[i]!;
      if (c === 0x3d && at + i + 2 < end) {
        const hi = HEX[view[i + 1]!]!;
        const lo = HEX[view[i + 2]!]!;
        if (hi >= 0 && lo >= 0) {
          collect.put(hi * 16 + lo);
          i += 2;
          continue;
        }
      }
      collect.put(c);
    }
    at += i;
  }
}

/** Feeds a stretch of the source through an encoder. */
export function encodeSpan(src: ByteSource, span: Span, encoder: Encoder): void {
  for (const c of chunks(src, span.start, span.end)) encoder.push(c);
  encoder.end();
}

function collectAll(run: (out: Output) => void): Buffer {
  const parts: Buffer[] = [];
  run((b) => parts.push(b));
  return Buffer.concat(parts);
}

export function toQuotedPrintable(data: Buffer): Buffer {
  return collectAll((out) => {
    const encoder = new QpEncoder(out);
    encoder.push(data);
    encoder.end();
  });
}
