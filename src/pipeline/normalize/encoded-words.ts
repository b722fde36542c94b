// 8-bit header text made 7-bit: RFC 2047 encoded-words for text and phrases,
// RFC 2231 for MIME parameter values. UTF-8 is said as such; other 8-bit text
// has no charset we could name, so it is labelled unknown-8bit (RFC 1428)
// rather than guessed.
import { isUtf8 } from 'node:buffer';
import { encodeWord } from '../../smtp/nodemailer-internals.ts';

/** Keeps each encoded-word within RFC 2047's 75 characters with room to spare. */
const WORD = 60;

/** Encoded-words for these octets, several joined by spaces when long. */
export function encodedWords(octets: Buffer): string {
  if (!isUtf8(octets)) {
    const words: string[] = [];
    for (let i = 0; i < octets.length; i += 33) words.push(`=?unknown-8bit?B?${octets.subarray(i, i + 33).toString('base64')}?=`);
    return words.join(' ');
  }
  // Q keeps mostly-Latin text readable in raw form; B is shorter for the rest.
  let high = 0;
  for (const c of octets) if (c >= 0x80) high++;
  return encodeWord(octets, high * 2 > octets.length ? 'B' : 'Q', WORD);
}

// RFC 2231 attribute-char: what may stand unescaped in an extended value.
const ATTRIBUTE_CHAR = /^[A-Za-z0-9!#$&+\-.^_`{|}~]$/;

/** `name*=utf-8''%C3%A9…`, or numbered sections `name*0*=…; name*1*=…` when long. */
export function extendedParameter(name: string, octets: Buffer): string {
  const charset = isUtf8(octets) ? 'utf-8' : 'unknown-8bit';
  const sections: string[] = [];
  let current = '';
  for (const c of octets) {
    const ch = String.fromCharCode(c);
    const piece = ATTRIBUTE_CHAR.test(ch) ? ch : `%${c.toString(16).toUpperCase().padStart(2, '0')}`;
    if (current.length + piece.length > WORD) {
      sections.push(current);
      current = '';
    }
    current += piece;
  }
  sections.push(current);
  if (sections.length === 1) return `${name}*=${charset}''${sections[0]}`;
  return sections.map((s, i) => `${name}*${i}*=${i === 0 ? `${charset}''` : ''}${s}`).join('; ');
}
