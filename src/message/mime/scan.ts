// The cheap checks that decide whether anything needs doing at all. They run
// over every message, so they are native searches, no per-octet JavaScript,
// and they take their input a chunk at a time, so a message need not be in
// memory as a whole.
import { isAscii, isUtf8 } from 'node:buffer';
import { chunks, type ByteSource, type Span } from './source.ts';

/** RFC 5322 §2.1.1: a line holds at most 998 octets, CRLF not counted. */
export const MAX_LINE_OCTETS = 998;

const LF = 0x0a;
const CR = 0x0d;

/**
 * Length of the longest line over 998 octets (its CRLF not counted), fed a
 * chunk at a time. A line ends at LF; a CR just before it is not counted, a
 * lone CR is. The last line needs no LF.
 */
export class LineScanner {
  private longest = 0;
  /** Octets of the line still open at the end of the last chunk. */
  private open = 0;
  private lastWasCr = false;

  push(data: Uint8Array): void {
    const n = data.length;
    if (n === 0) return;
    const buf = Buffer.from(data.buffer, data.byteOffset, n);
    const first = buf.indexOf(LF);
    if (first < 0) {
      this.open += n;
      this.lastWasCr = buf[n - 1] === CR;
      return;
    }
    const cr = first > 0 ? buf[first - 1] === CR : this.lastWasCr;
    this.line(this.open + first - (cr ? 1 : 0));
    let s = first + 1;
    // Looks for the last LF within reach of each line start, so short lines
    // are skipped a kilobyte at a time.
    while (n - s > MAX_LINE_OCTETS) {
      const reach = s + MAX_LINE_OCTETS + 1; // a line of 998 octets has its LF here
      const last = buf.lastIndexOf(LF, reach);
      if (last >= s) {
        // every line up to `last` fits, except a 999-octet one ended by a bare LF
        if (last === reach && buf[last - 1] !== CR && buf.indexOf(LF, s) === last) this.line(MAX_LINE_OCTETS + 1);
        s = last + 1;
        continue;
      }
      const lf = buf.indexOf(LF, reach);
      if (lf < 0) break;
      this.line(lf - s - (buf[lf - 1] === CR ? 1 : 0));
      s = lf + 1;
    }
    // what is left either is open or holds only short lines before the open one
    if (n - s <= MAX_LINE_OCTETS) {
      const last = buf.lastIndexOf(LF, n - 1);
      if (last >= s) s = last + 1;
    }
    this.open = n - s;
    this.lastWasCr = buf[n - 1] === CR;
  }

  /** The longest line over 998 octets, or 0. */
  end(): number {
    this.line(this.open);
    this.open = 0;
    return this.longest;
  }

  private line(length: number): void {
    if (length > MAX_LINE_OCTETS && length > this.longest) this.longest = length;
  }
}

/**
 * Whether a text is UTF-8, fed a chunk at a time: each piece is checked up to
 * the last octet that starts a character, the rest waits for the next chunk.
 */
export class Utf8Check {
  private valid = true;
  private held: Buffer = Buffer.alloc(0);

  push(data: Buffer): void {
    if (!this.valid || data.length === 0) return;
    const buf = this.held.length > 0 ? Buffer.concat([this.held, data]) : data;
    let cut = buf.length;
    // a character is at most 4 octets: its first one is within the last 4
    for (let i = buf.length - 1; i >= Math.max(0, buf.length - 4); i--) {
      if ((buf[i]! & 0xc0) !== 0x80) {
        cut = i;
        break;
      }
    }
    this.held = Buffer.from(buf.subarray(cut));
    if (!isUtf8(buf.subarray(0, cut))) this.valid = false;
  }

  end(): boolean {
    return this.valid && isUtf8(this.held);
  }
}

/** What a hop would change or read differently: overlong lines, 8-bit octets, NUL octets. */
export interface Findings {
  /** The longest line over 998 octets (its CRLF not counted), or 0. */
  longest: number;
  eightBit: boolean;
  nul: boolean;
}

/** Findings, fed a chunk at a time in one pass (as a body streams in, or a stretch of a source is read). */
export class FindingsScanner {
  private readonly lines = new LineScanner();
  private eightBit = false;
  private nul = false;

  push(chunk: Uint8Array): void {
    this.lines.push(chunk);
    if (!this.eightBit && !isAscii(chunk)) this.eightBit = true;
    if (!this.nul && chunk.indexOf(0) >= 0) this.nul = true;
  }

  end(): Findings {
    return { longest: this.lines.end(), eightBit: this.eightBit, nul: this.nul };
  }
}

export function scanSpan(src: ByteSource, span: Span): Findings {
  const scanner = new FindingsScanner();
  for (const c of chunks(src, span.start, span.end)) scanner.push(c);
  return scanner.end();
}

/** Whether this stretch would be changed by a hop with line limits or without 8BITMIME, or read differently (NUL). */
export function spanUnsafe(src: ByteSource, span: Span, eightBitMime: boolean): boolean {
  return findingsUnsafe(scanSpan(src, span), eightBitMime);
}

/** Whether octets with these findings would be changed by such a hop, or read differently. */
export function findingsUnsafe(found: Findings, eightBitMime: boolean): boolean {
  return found.longest > 0 || (!eightBitMime && found.eightBit) || found.nul;
}

export function spanHas8bit(src: ByteSource, span: Span): boolean {
  for (const c of chunks(src, span.start, span.end)) if (!isAscii(c)) return true;
  return false;
}

/** Octets quoted-printable writes as "=XX" (RFC 2045 §6.7): 8-bit ones, "=", and controls other than CR, LF and TAB. */
export function spanEscapes(src: ByteSource, span: Span): number {
  let escapes = 0;
  for (const c of chunks(src, span.start, span.end)) {
    for (let i = 0; i < c.length; i++) {
      const o = c[i]!;
      if (o >= 0x7f || o === 0x3d || (o < 0x20 && o !== 0x0d && o !== 0x0a && o !== 0x09)) escapes++;
    }
  }
  return escapes;
}

export function spanIsUtf8(src: ByteSource, span: Span): boolean {
  const check = new Utf8Check();
  for (const c of chunks(src, span.start, span.end)) check.push(c);
  return check.end();
}

/**
 * Length of the longest line over 998 octets (its CRLF not counted), or 0 when
 * there is none.
 */
export function overlongLine(buf: Uint8Array): number {
  const lines = new LineScanner();
  lines.push(buf);
  return lines.end();
}

export function has8bit(buf: Uint8Array): boolean {
  return buf.length > 0 && !isAscii(buf);
}

/**
 * RFC 2045 §2.7-2.8: neither 7bit nor 8bit data may hold NUL. Receivers
 * disagree on what it means (OpenDKIM-based verifiers hash it differently
 * from dkimpy), so a signature over it fails at some of them.
 */
export function hasNul(buf: Uint8Array): boolean {
  return buf.indexOf(0) >= 0;
}
