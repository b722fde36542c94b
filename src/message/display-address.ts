// Addresses a reader would see in a display name or comment: the text that
// makes "ceo@example.com" <p@other.example> look like mail from example.com.
import { domainToASCII } from 'node:url';
import { isValidDomain } from '../keys/names.ts';
import { trimOf } from './trim.ts';

/**
 * The ASCII domains of what looks like an address in `text` (already decoded
 * from RFC 2047). Found generously: full-width "＠" and dots count (NFKC),
 * and spaces and invisible characters are ignored, since a reader's eye skips them.
 */
export function shownAddressDomains(text: string): string[] {
  const squeezed = text.normalize('NFKC').replace(/[\p{White_Space}\p{Cf}]/gu, '');
  const domains: string[] = [];
  for (const match of squeezed.matchAll(/@([\p{L}\p{M}\p{N}.\u3002\uff0e\uff61-]+)/gu)) {
    const name = trimOf(match[1]!.replace(/[\u3002\uff0e\uff61]/g, '.'), '.-').toLowerCase();
    const ascii = domainToASCII(name);
    if (isValidDomain(ascii)) domains.push(ascii);
  }
  return domains;
}
