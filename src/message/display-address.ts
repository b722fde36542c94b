// Addresses a reader would see in a display name or comment: the text that
// makes "ceo@example.com" <p@other.example> look like mail from example.com.
import { domainToASCII } from 'node:url';
import { isValidDomain } from '../common/names.ts';
import { trimOf } from './trim.ts';

/**
 * Characters a reader takes for a "." in an address, that NFKC leaves as
 * they are (U+2024 and U+FE52 it does turn into "."): the middle dots
 * (Latin, Greek, Katakana, Unicode's word separators and operators), bullets,
 * and the full stops of other scripts (Armenian, Arabic, Syriac, Lisu, Vai).
 */
export const LOOK_ALIKE_DOT = /[\u00b7\u0387\u0589\u06d4\u0701\u0702\u2022\u2027\u2219\u22c5\u2e31\u2e33\u30fb\ua4f8\ua60e\uff65\u{10101}]/gu;

/**
 * The ASCII domains of what looks like an address in `text` (already decoded
 * from RFC 2047). Found generously: full-width "＠" and dots count (NFKC), so
 * do the characters that look like a dot (LOOK_ALIKE_DOT), and spaces and
 * invisible characters are ignored, since a reader's eye skips them.
 */
export function shownAddressDomains(text: string): string[] {
  const squeezed = text
    .normalize('NFKC')
    .replace(/[\p{White_Space}\p{Cf}]/gu, '')
    .replace(LOOK_ALIKE_DOT, '.');
  const domains: string[] = [];
  for (const match of squeezed.matchAll(/@([\p{L}\p{M}\p{N}.\u3002\uff0e\uff61-]+)/gu)) {
    const name = trimOf(match[1]!.replace(/[\u3002\uff0e\uff61]/g, '.'), '.-').toLowerCase();
    const ascii = domainToASCII(name);
    if (isValidDomain(ascii)) domains.push(ascii);
  }
  return domains;
}
