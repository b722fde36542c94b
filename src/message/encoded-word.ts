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

/** The "Q" encoding (RFC 2047 §4.2): "_" is a space, =XX an octet; other text stands for its UTF-8 octets. */
function qBytes(encoded: string): Buffer {
  const text = Buffer.from(encoded, 'utf8');
  const bytes = Buffer.allocUnsafe(text.length);
  let o = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    const high = c === 0x3d ? hexValue(text[i + 1]) : -1;
    const low = high < 0 ? -1 : hexValue(text[i + 2]);
    if (low >= 0) {
      bytes[o++] = high * 16 + low;
      i += 2;
    } else bytes[o++] = c === 0x5f ? 0x20 : c;
  }
  return bytes.subarray(0, o);
}

/** The value of an ASCII hex digit, or -1. */
function hexValue(c: number | undefined): number {
  if (c === undefined) return -1;
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const lower = c | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1;
}
