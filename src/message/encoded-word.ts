// RFC 2047 encoded-words (=?charset?B|Q?text?=), decoded as a mail reader
// would show them. Readers decode them wherever they appear, quoted strings
// and comments included, so this does too.

export type Decoded = { ok: true; text: string } | { ok: false; problem: string };

const ENCODED_WORD = /=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=/g;

export function decodeEncodedWords(text: string): Decoded {
  let problem: string | null = null;
  const decoded = text.replace(ENCODED_WORD, (word, charsetAndLanguage: string, encoding: string, encoded: string) => {
    // RFC 2231 §5: =?charset*language?…?=
    const charset = charsetAndLanguage.split('*', 1)[0]!;
    const bytes = encoding.toUpperCase() === 'B' ? Buffer.from(encoded, 'base64') : qBytes(encoded);
    try {
      return new TextDecoder(charset).decode(bytes);
    } catch {
      problem ??= `an encoded-word in a charset that cannot be read (${charset.slice(0, 40)})`;
      return word;
    }
  });
  return problem === null ? { ok: true, text: decoded } : { ok: false, problem };
}

/** The "Q" encoding (RFC 2047 §4.2): "_" is a space, =XX an octet. */
function qBytes(encoded: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < encoded.length; i++) {
    const c = encoded[i]!;
    const hex = c === '=' ? encoded.slice(i + 1, i + 3) : '';
    if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else if (c === '_') bytes.push(0x20);
    else bytes.push(...Buffer.from(c, 'utf8'));
  }
  return Buffer.from(bytes);
}
