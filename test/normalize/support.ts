// Fixtures and independent decoders for the normalization tests. The decoders
// are deliberately naive and separate from src/, so a bug cannot hide on both sides.
import { replyLine, replyText } from '../../src/smtp/reply.ts';
import assert from 'node:assert/strict';
import type { NormalizeOptions, Normalized } from '../../src/pipeline/normalize/options.ts';

export const options = (over: Partial<NormalizeOptions> = {}): NormalizeOptions => ({
  addDate: false,
  addMessageId: false,
  longLines: 'reencode',
  nul: 'reencode',
  refoldHeaders: true,
  mergeDuplicates: false,
  eightBitMime: true,
  messageIdDomain: 'example.com',
  ...over,
});

/** Lines joined by CRLF, with a final CRLF; UTF-8 unless told latin1. */
export const crlf = (lines: string[], encoding: BufferEncoding = 'utf8'): Buffer => Buffer.from(lines.join('\r\n') + '\r\n', encoding);

export function ok(result: Normalized): { message: Buffer; changes: string[] } {
  if (!result.ok) assert.fail(`expected ok, got ${replyLine(result.reply)}`);
  return result;
}

/** The refusal, its text with the enhanced code as on the wire. */
export function refused(result: Normalized): { code: number; text: string } {
  if (result.ok) assert.fail(`expected a refusal, got changes ${JSON.stringify(result.changes)}`);
  return { code: result.reply.code, text: replyText(result.reply) };
}

/** The transit invariants: lines of at most 998 octets, and 7-bit when asked. */
export function assertTransitSafe(message: Buffer, sevenBit: boolean): void {
  const text = message.toString('latin1');
  assert.ok(text.endsWith('\r\n'), 'message ends with CRLF');
  let longest = 0;
  for (const line of text.split('\r\n')) {
    longest = Math.max(longest, line.length);
    assert.ok(!/[\r\n]/.test(line), 'bare CR or LF');
  }
  assert.ok(longest <= 998, `a line of ${longest} octets is left`);
  if (sevenBit) {
    const at = message.findIndex((c) => c >= 0x80);
    assert.equal(at, -1, `8-bit octet at ${at}`);
  }
}

/** Header block and body of an entity (as latin1 strings). */
export function split(entity: Buffer | string): { header: string; body: string } {
  const text = typeof entity === 'string' ? entity : entity.toString('latin1');
  const at = text.indexOf('\r\n\r\n');
  return at < 0 ? { header: text, body: '' } : { header: text.slice(0, at + 2), body: text.slice(at + 4) };
}

/** The unfolded value of the first field of this name, or undefined. */
export function header(headerBlock: string, name: string): string | undefined {
  const unfolded = headerBlock.replace(/\r\n(?=[ \t])/g, '');
  const line = unfolded.split('\r\n').find((l) => l.toLowerCase().startsWith(name.toLowerCase() + ':'));
  return line?.slice(name.length + 1).trim();
}

/** The parts between "--boundary" lines (fixtures use plain delimiters, no padding). */
export function parts(body: string, boundary: string): string[] {
  const chunks = ('\r\n' + body).split(`\r\n--${boundary}`);
  return chunks.slice(1, -1).map((c) => c.slice(c.indexOf('\r\n') + 2));
}

/** RFC 2045 §6.7 decoding, written from the RFC and nothing else. */
export function decodeQP(text: string): Buffer {
  const out: number[] = [];
  const lines = text.split('\r\n');
  lines.forEach((raw, i) => {
    const line = raw.replace(/[ \t]+$/, '');
    const soft = line.endsWith('=');
    const body = soft ? line.slice(0, -1) : line;
    for (let j = 0; j < body.length; j++) {
      if (body[j] === '=' && /^[0-9A-F]{2}$/.test(body.slice(j + 1, j + 3))) {
        out.push(parseInt(body.slice(j + 1, j + 3), 16));
        j += 2;
      } else {
        assert.notEqual(body[j], '=', `bad QP escape in ${JSON.stringify(line)}`);
        out.push(body.charCodeAt(j));
      }
    }
    if (!soft && i < lines.length - 1) out.push(0x0d, 0x0a);
  });
  return Buffer.from(out);
}

export function decodeBase64(text: string): Buffer {
  assert.match(text, /^[A-Za-z0-9+/=\r\n]*$/);
  for (const line of text.split('\r\n')) assert.ok(line.length <= 76, `base64 line of ${line.length}`);
  return Buffer.from(text.replace(/\r\n/g, ''), 'base64');
}

/** RFC 2047 decoding of a header value: encoded-words to octets, whitespace between them dropped. */
export function decodeWords(value: string): Buffer {
  const word = /=\?([^?]+)\?([BbQq])\?([^?]*)\?=/y;
  const out: Buffer[] = [];
  let i = 0;
  let lastWasWord = false;
  let pendingSpace = '';
  while (i < value.length) {
    word.lastIndex = i;
    const m = word.exec(value);
    if (m) {
      const [, , enc, text] = m;
      if (!lastWasWord) out.push(Buffer.from(pendingSpace, 'latin1'));
      out.push(enc!.toUpperCase() === 'B' ? Buffer.from(text!, 'base64') : decodeQP(text!.replace(/_/g, ' ')));
      pendingSpace = '';
      lastWasWord = true;
      i = word.lastIndex;
      continue;
    }
    const c = value[i]!;
    if (c === ' ' || c === '\t') {
      pendingSpace += c;
    } else {
      out.push(Buffer.from(pendingSpace + c, 'latin1'));
      pendingSpace = '';
      lastWasWord = false;
    }
    i++;
  }
  out.push(Buffer.from(pendingSpace, 'latin1'));
  return Buffer.concat(out);
}
