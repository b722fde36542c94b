// Steps 2 and 4 for one header block: lines over 998 octets are refolded (or
// refused), and 8-bit text is encoded when the upstream is 7-bit only.
import { foldField, longestFieldLine } from '../../message/mime/fold.ts';
import { replaceRaw, type HeaderBlock } from './header-block.ts';
import { has8bitText } from './header-tokens.ts';
import { fieldLabel, inPart, Refusal } from './refusal.ts';
import { MAX_LINE_OCTETS } from '../../message/mime/scan.ts';
import { sevenBitField } from './seven-bit-header.ts';
import type { Walk } from './walk.ts';

/** Encoded fields are folded as a well-behaved mailer would. */
const ENCODED_FOLD = 78;

export function normalizeHeader(block: HeaderBlock, path: string, walk: Walk): void {
  const { refoldHeaders, eightBitMime } = walk.options;
  for (const field of block.fields) {
    const name = fieldLabel(field.name);
    const longest = longestFieldLine(field.raw);
    if (longest > MAX_LINE_OCTETS) {
      const where = `The ${name}: header${inPart(path)} has a line of ${longest} octets`;
      if (!refoldHeaders) throw new Refusal(554, `5.6.0 ${where}; RFC 5322 allows 998 (header refolding is off)`);
      const folded = foldField(field.raw, MAX_LINE_OCTETS);
      if (folded.longest > MAX_LINE_OCTETS) throw new Refusal(554, `5.6.0 ${where} and no whitespace to fold it at; RFC 5322 allows 998`);
      replaceRaw(block, field, folded.raw);
      walk.changes.push(`refolded ${name}:${inPart(path)} (${longest} octets)`);
    }
    if (!(walk.options.smtpUtf8 ?? eightBitMime) && has8bitText(field.raw)) {
      const { raw, what } = sevenBitField(field);
      const folded = foldField(raw, ENCODED_FOLD);
      if (folded.longest > MAX_LINE_OCTETS) {
        throw new Refusal(554, `5.6.0 The ${name}: header${inPart(path)} cannot be folded to 998 octets once encoded`);
      }
      replaceRaw(block, field, folded.raw);
      const as = what === 'parameters' ? 'RFC 2231 values' : 'RFC 2047 encoded-words';
      walk.changes.push(`encoded 8-bit ${what} in ${name}:${inPart(path)} as ${as}`);
    }
  }
}
