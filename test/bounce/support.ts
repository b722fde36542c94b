// Reading a DSN the way a receiver does: Python's email package parses it
// (a parser that shares no code with the builder), and the wire form is
// checked octet by octet.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { run } from '../helpers/verifier-process.ts';

type Fields = [string, string][];

export interface ParsedPart {
  type: string;
  params: Record<string, string>;
  fields: Fields;
  defects: string[];
  /** message/delivery-status: the per-message block, then one block per recipient. */
  blocks?: Fields[];
  /** message/rfc822: the enclosed message. */
  message?: { fields: Fields; body: string };
  /** text/*: the decoded text. */
  text?: string;
}

export interface ParsedMessage {
  type: string;
  params: Record<string, string>;
  fields: Fields;
  defects: string[];
  multipart: boolean;
  parts: ParsedPart[];
}

export async function parseWithPython(message: Buffer): Promise<ParsedMessage> {
  const out = await run('/usr/bin/python3', [join(import.meta.dirname, 'parse_dsn.py')], message);
  const parsed = JSON.parse(out.trim().split('\n').pop() ?? '') as ParsedMessage;
  if (typeof parsed.type !== 'string' || !Array.isArray(parsed.parts)) throw new Error(`the parser printed an unexpected result: ${out.slice(0, 200)}`);
  return parsed;
}

/** The value of the only field with this name (case-insensitive); fails when absent or repeated. */
export function only(fields: Fields, name: string): string {
  const values = fields.filter(([k]) => k.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
  assert.equal(values.length, 1, `expected one ${name} field, found ${values.length}`);
  return values[0]!;
}

export function has(fields: Fields, name: string): boolean {
  return fields.some(([k]) => k.toLowerCase() === name.toLowerCase());
}

/** CRLF line ends only, lines of at most 998 octets, and (unless allowed) no 8-bit octet. */
export function assertWireSafe(message: Buffer, allow8bitLines: RegExp[] = []): void {
  const text = message.toString('latin1');
  assert.ok(text.endsWith('\r\n'), 'the message ends with CRLF');
  assert.doesNotMatch(text, /\r(?!\n)|(?<!\r)\n/, 'no bare CR or LF');
  for (const line of text.split('\r\n')) {
    assert.ok(line.length <= 998, `a line of ${line.length} octets: ${line.slice(0, 60)}…`);
    if (/[^\x00-\x7f]/.test(line)) {
      const utf8 = Buffer.from(line, 'latin1').toString('utf8');
      assert.ok(
        allow8bitLines.some((re) => re.test(utf8)),
        `8-bit line: ${utf8.slice(0, 60)}`,
      );
    }
  }
}

/** Text with every run of whitespace (line breaks of wrapping included) as one space. */
export const flat = (text: string): string => text.replace(/\s+/g, ' ');
