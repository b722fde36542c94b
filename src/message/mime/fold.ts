// Header folding (RFC 5322 §2.2.3). A fold is a CRLF inserted before existing
// whitespace, so unfolding gives back the very same value; nothing is added.
import { MAX_LINE_OCTETS } from './scan.ts';

/** Where lines are folded when whitespace allows: RFC 5322 §2.1.1, lines SHOULD be no more than 78 characters, CRLF not counted. */
export const FOLD_AT = 78;

const isWsp = (c: number): boolean => c === 0x20 || c === 0x09;

/**
 * Refolds every physical line of a field (raw, no final CRLF) longer than
 * `over` octets. Returns the longest line left; over 998 means it could not be
 * folded at whitespace.
 */
export function foldField(raw: string, over: number): { raw: string; longest: number } {
  const lines = raw.split('\r\n');
  let longest = 0;
  const out: string[] = [];
  lines.forEach((line, i) => {
    const pieces = line.length > over ? foldLine(line, i === 0) : [line];
    for (const piece of pieces) longest = Math.max(longest, piece.length);
    out.push(...pieces);
  });
  return { raw: out.join('\r\n'), longest };
}

/** Longest physical line of a raw field. */
export function longestFieldLine(raw: string): number {
  let longest = 0;
  for (const line of raw.split('\r\n')) longest = Math.max(longest, line.length);
  return longest;
}

/**
 * Splits one physical line before whitespace runs: the last run that keeps the
 * piece within 78 octets, else the first one that keeps it within 998. Each
 * piece keeps some visible text (no whitespace-only lines), and the first one
 * is never cut right after "Name:", which some canonicalizers get wrong (P12).
 */
function foldLine(line: string, first: boolean): string[] {
  // A run reaching the end of the line cannot be folded before: the new line
  // would be whitespace only.
  let tail = line.length;
  while (tail > 0 && isWsp(line.charCodeAt(tail - 1))) tail--;
  const runStart = (p: number): boolean => p < tail && isWsp(line.charCodeAt(p)) && !isWsp(line.charCodeAt(p - 1));

  const pieces: string[] = [];
  let s = 0;
  while (line.length - s > FOLD_AT) {
    let min = first && s === 0 ? line.indexOf(':') + 1 : s;
    while (min < line.length && isWsp(line.charCodeAt(min))) min++;
    min++; // after the first visible octet
    let cut = -1;
    for (let p = Math.min(s + FOLD_AT, tail - 1); p >= min; p--) {
      if (runStart(p)) {
        cut = p;
        break;
      }
    }
    if (cut < 0) {
      const limit = Math.min(s + MAX_LINE_OCTETS, tail - 1);
      for (let p = Math.max(min, s + FOLD_AT + 1); p <= limit; p++) {
        if (runStart(p)) {
          cut = p;
          break;
        }
      }
    }
    if (cut < 0) break;
    pieces.push(line.slice(s, cut));
    s = cut;
  }
  pieces.push(line.slice(s));
  return pieces;
}
