// The cheap checks that decide whether anything needs doing at all. They run
// over every message, so they are native searches, no per-octet JavaScript.
import { isAscii } from 'node:buffer';

/** RFC 5322 §2.1.1: a line holds at most 998 octets, CRLF not counted. */
export const MAX_LINE = 998;

const LF = 0x0a;
const CR = 0x0d;

/**
 * Length of the longest line over 998 octets (its CRLF not counted), or 0 when
 * there is none. Looks for the last LF within reach of each line start, so
 * short lines are skipped a kilobyte at a time.
 */
export function overlongLine(buf: Uint8Array): number {
  const data = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = data.length;
  let longest = 0;
  let s = 0;
  while (n - s > MAX_LINE) {
    const reach = s + MAX_LINE + 1; // a line of 998 octets has its LF here
    const last = data.lastIndexOf(LF, reach);
    if (last >= s) {
      // every line up to `last` fits, except a 999-octet one ended by a bare LF
      if (last === reach && data[last - 1] !== CR && data.indexOf(LF, s) === last) longest = Math.max(longest, MAX_LINE + 1);
      s = last + 1;
      continue;
    }
    const lf = data.indexOf(LF, reach);
    const end = lf < 0 ? n : lf;
    longest = Math.max(longest, end - s - (lf > 0 && data[lf - 1] === CR ? 1 : 0));
    s = lf < 0 ? n : lf + 1;
  }
  return longest;
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

/** Whether these octets would be changed by a hop with line limits or without 8BITMIME, or read differently (NUL). */
export function unsafeForTransit(buf: Uint8Array, eightBitMime: boolean): boolean {
  return overlongLine(buf) > 0 || (!eightBitMime && has8bit(buf)) || hasNul(buf);
}
