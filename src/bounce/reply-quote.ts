// A receiving server's reply as a notice quotes it: data from a stranger,
// going into a message the relay signs. So it is made inert and bounded
// before any part of the notice sees it:
//
//   - control characters (C0 but line breaks, DEL, C1), Unicode format
//     characters (bidirectional overrides, zero-width characters) and line
//     or paragraph separators are removed: nothing can start a header line
//     of its own, reorder the text on screen or hide in it;
//   - "=?" is written "= ?", so no reader decodes an RFC 2047 encoded word
//     out of it (a Diagnostic-Code is read like a header field);
//   - at most REPLY_OCTETS of each reply, and REPLIES_OCTETS of all the
//     replies of one notice; what is cut is marked "[...]".
//
// The MIME boundary needs no care here: it is random and checked against
// every part (dsn.ts).
import { isEnhancedStatus, type SmtpReply } from '../smtp/reply.ts';

/** RFC 5321 §4.5.3.1.5 allows a reply line of 512 octets; a quote keeps as much of each reply. */
export const REPLY_OCTETS = 512;
/** All replies quoted by one notice together. */
export const REPLIES_OCTETS = 8 * 1024;

const CUT = ' [...]';

const UNSAFE = /[\x00-\x09\x0b-\x1f\x7f-\x9f\p{Cf}\u2028\u2029]/gu;

/** The reply's text made inert: one line per reply line, trimmed, without empty ones. */
export function inertText(text: string): string {
  return text
    .split(/\r\n?|\n/)
    .map((line) =>
      line
        .replace(UNSAFE, (c) => (c === '\t' ? ' ' : ''))
        .replaceAll('=?', '= ?')
        .trim(),
    )
    .filter(Boolean)
    .join('\n');
}

/** At most `octets` octets of UTF-8, cut between characters, marked when cut. */
export function bounded(text: string, octets: number): string {
  if (Buffer.byteLength(text, 'utf8') <= octets) return text;
  const room = Math.max(0, octets - CUT.length);
  let used = 0;
  let out = '';
  for (const char of text) {
    used += Buffer.byteLength(char, 'utf8');
    if (used > room) break;
    out += char;
  }
  return out.trimEnd() + CUT;
}

/** The replies of one notice's recipients, inert and within the bounds, in order. */
export function quoteReplies<T extends { reply?: SmtpReply | undefined }>(recipients: readonly T[]): T[] {
  let left = REPLIES_OCTETS;
  return recipients.map((r) => {
    if (!r.reply) return r;
    const text = bounded(inertText(r.reply.text), Math.min(REPLY_OCTETS, left)).trim();
    left -= Buffer.byteLength(text, 'utf8');
    // An enhanced code is shown only when it is one (RFC 3463 §2); the code, a number, as it is.
    const enhanced = isEnhancedStatus(r.reply.enhanced) ? r.reply.enhanced : undefined;
    return { ...r, reply: { code: r.reply.code, enhanced, text } };
  });
}
