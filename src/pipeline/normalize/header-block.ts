// An entity's header block that can be edited field by field and written back.
// Fields nobody edits keep their exact bytes and their order.
import { HeaderSyntaxError, parseHeader, type HeaderField } from '../../message/header.ts';
import type { Piece } from './pieces.ts';
import { indexOf, octetAt, type ByteSource, type Span } from '../../message/mime/source.ts';

export interface HeaderBlock {
  fields: HeaderField[];
  /** The original block, written back as is while nothing was edited. */
  original: Buffer;
  edited: boolean;
}

/** One MIME entity (a message, or a part of a multipart): header block and where its body is. */
export interface Entity {
  header: HeaderBlock;
  body: Span;
  hasSeparator: boolean;
}

const CRLF = Buffer.from('\r\n');
const CRLFCRLF = Buffer.from('\r\n\r\n');

/**
 * The most a part's header block may take. The message's own header is held
 * to headers.maxSize before normalization starts; a part's is read here, and
 * a part with no empty line would otherwise be read whole as its header.
 */
export const MAX_ENTITY_HEADER = 1024 * 1024;

/**
 * Splits the entity in [span.start, span.end) at its first empty line, as
 * splitMessage does, and parses its header; a header that does not parse
 * gives its reason instead. Only the header block is read.
 */
export function readEntity(src: ByteSource, span: Span): Entity | string {
  const { start, end } = span;
  let headerEnd: number;
  let body: Span;
  if (end - start >= 2 && octetAt(src, start) === 0x0d && octetAt(src, start + 1) === 0x0a) {
    headerEnd = start;
    body = { start: start + 2, end };
  } else {
    const at = indexOf(src, CRLFCRLF, start, Math.min(end, start + MAX_ENTITY_HEADER + 4));
    headerEnd = at < 0 ? end : at + 2;
    body = at < 0 ? { start: end, end } : { start: at + 4, end };
  }
  if (headerEnd - start > MAX_ENTITY_HEADER) return `its header block is over ${MAX_ENTITY_HEADER} octets (no empty line ends it)`;
  const header = src.read(start, headerEnd);
  try {
    return { header: { fields: parseHeader(header), original: header, edited: false }, body, hasSeparator: body.start > headerEnd };
  } catch (err) {
    if (err instanceof HeaderSyntaxError) return err.message;
    throw err;
  }
}

export function headerBytes(block: HeaderBlock): Buffer {
  if (!block.edited) return block.original;
  if (block.fields.length === 0) return block.original.subarray(0, 0);
  return Buffer.from(block.fields.map((f) => f.raw + '\r\n').join(''), 'latin1');
}

/** The entity as pieces, with a new body when one is given. */
export function entityPieces(entity: Entity, body: Piece[] | null): Piece[] {
  const header = headerBytes(entity.header);
  // A part that was all header and had no final CRLF (it went to the boundary
  // delimiter) gets one only when its header was rewritten.
  if (!entity.hasSeparator) return [header];
  return [header, CRLF, ...(body ?? [entity.body])];
}

export function replaceRaw(block: HeaderBlock, field: HeaderField, raw: string): void {
  field.raw = raw;
  block.edited = true;
}

/** Gives every field of this name the value, or appends one (after the last field) when none exists. */
export function setField(block: HeaderBlock, name: string, value: string): void {
  const key = name.toLowerCase();
  let found = false;
  for (const f of block.fields) {
    if (f.key !== key) continue;
    replaceRaw(block, f, `${f.name}: ${value}`);
    found = true;
  }
  if (!found) appendField(block, name, value);
}

export function appendField(block: HeaderBlock, name: string, value: string): void {
  block.fields.push({ name, key: name.toLowerCase(), raw: `${name}: ${value}` });
  block.edited = true;
}

export function removeField(block: HeaderBlock, field: HeaderField): void {
  block.fields = block.fields.filter((f) => f !== field);
  block.edited = true;
}
