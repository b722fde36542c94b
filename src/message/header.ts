// The header block of a CRLF message, as a list of fields.
// Field text is kept as a "binary" (latin1) string: one char per octet, so
// 8-bit header bytes survive untouched into canonicalization and back.

import { trimEndOf } from './trim.ts';

export interface HeaderField {
  /** Field name as written, e.g. "Subject". */
  name: string;
  /** Lower-cased name, for comparisons. */
  key: string;
  /** The whole field, folded lines included, without its final CRLF. */
  raw: string;
}

export interface SplitMessage {
  /** Header block: every field with its CRLF, without the blank separator line. */
  header: Buffer;
  /** Everything after the blank line (empty when there is none). */
  body: Buffer;
  /** Whether the message had a blank line between header and body. */
  hasSeparator: boolean;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');
const CRLF = Buffer.from('\r\n');

/** Splits a CRLF message at its first empty line. */
export function splitMessage(msg: Buffer): SplitMessage {
  if (msg.length >= 2 && msg[0] === 0x0d && msg[1] === 0x0a) {
    return { header: msg.subarray(0, 0), body: msg.subarray(2), hasSeparator: true };
  }
  const at = msg.indexOf(CRLFCRLF);
  if (at < 0) return { header: msg, body: msg.subarray(msg.length), hasSeparator: false };
  return { header: msg.subarray(0, at + 2), body: msg.subarray(at + 4), hasSeparator: true };
}

export class HeaderSyntaxError extends Error {}

/**
 * The first field longer than `max` octets (all its lines, without the final
 * CRLF), or null: one pass over the octets, made before anything parses them.
 * The name is as written (its first 60 octets, quoted), for the reply.
 */
export function oversizedField(header: Buffer, max: number): { name: string; size: number } | null {
  let start = 0;
  let end = 0;
  const check = (): { name: string; size: number } | null => {
    if (end - start <= max) return null;
    const colon = header.indexOf(0x3a, start);
    const name = header.subarray(start, Math.min(colon < start || colon > end ? end : colon, start + 60)).toString('latin1');
    return { name: printable(name), size: end - start };
  };
  for (let at = 0; at < header.length;) {
    const eol = header.indexOf(CRLF, at);
    const lineEnd = eol < 0 ? header.length : eol;
    const continuation = header[at] === 0x20 || header[at] === 0x09;
    if (!continuation) {
      const found = at > 0 ? check() : null;
      if (found) return found;
      start = at;
    }
    end = lineEnd;
    at = lineEnd + 2;
  }
  return header.length > 0 ? check() : null;
}

/** Parses a CRLF header block into fields; a continuation line joins the field above it. */
export function parseHeader(header: Buffer): HeaderField[] {
  const text = header.toString('latin1');
  const fields: HeaderField[] = [];
  const lines = text.split('\r\n');
  if (lines[lines.length - 1] === '') lines.pop();
  for (const line of lines) {
    if (line.startsWith(' ') || line.startsWith('\t')) {
      const last = fields[fields.length - 1];
      if (!last) throw new HeaderSyntaxError('the header starts with a continuation line');
      last.raw += '\r\n' + line;
      continue;
    }
    const colon = line.indexOf(':');
    const name = colon > 0 ? trimEndOf(line.slice(0, colon), ' \t') : '';
    if (!/^[!-9;-~]+$/.test(name)) {
      throw new HeaderSyntaxError(`header line is not "Name: value": ${printable(line.slice(0, 60))}`);
    }
    fields.push({ name, key: name.toLowerCase(), raw: line });
  }
  return fields;
}

/** A binary string quoted for a message: octets outside printable ASCII as \xNN. */
function printable(text: string): string {
  return `"${text.replace(/[^\x20-\x7e]|["\\]/g, (c) => (c === '"' || c === '\\' ? `\\${c}` : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`))}"`;
}

/** The unfolded value of a field (after the colon), as a binary string. */
export function fieldValue(field: HeaderField): string {
  return field.raw
    .slice(field.raw.indexOf(':') + 1)
    .replace(/\r\n/g, '')
    .trim();
}

/** All fields with this name, top to bottom. */
export function fieldsNamed(fields: HeaderField[], name: string): HeaderField[] {
  const key = name.toLowerCase();
  return fields.filter((f) => f.key === key);
}
