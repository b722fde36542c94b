// The report inside a saved or fetched mail message: receivers send it as an
// attachment (RFC 7489 §7.2.1.1), usually of a multipart/mixed, sometimes as
// the message's only body. The message is read with the same MIME readers
// the relay normalizes mail with: header fields, Content-Type, multipart
// delimiters (RFC 2046 §5.1.1), and base64 or quoted-printable bodies.
import { fieldsNamed, fieldValue, parseHeader, splitMessage } from '../message/header.ts';
import { toCrlf } from '../message/lines.ts';
import { contentInfo } from '../message/mime/content-type.ts';
import { bufferSource } from '../message/mime/source.ts';
import { decodeQuotedPrintable } from '../message/mime/transfer-encoding.ts';
import { findParts } from '../pipeline/normalize/multipart.ts';
import { parseHeaderValue } from '../smtp/nodemailer-internals.ts';
import type { Checked } from './report-model.ts';
import { refused } from './report-model.ts';

/**
 * The media types receivers give report attachments, and what each declares
 * the content to be; octet-stream is common and declares nothing, so the
 * content decides.
 */
export const REPORT_TYPES: Readonly<Record<string, 'gzip' | 'zip' | 'xml' | undefined>> = {
  'application/gzip': 'gzip',
  'application/x-gzip': 'gzip',
  'application/zip': 'zip',
  'application/x-zip-compressed': 'zip',
  'application/x-zip': 'zip',
  'application/xml': 'xml',
  'text/xml': 'xml',
  'application/octet-stream': undefined,
};

/** Nesting followed into multiparts and attached messages. */
const MAX_DEPTH = 8;

export interface Attachment {
  contentType: string;
  filename: string;
  data: Buffer;
}

export function reportAttachment(message: Buffer): Checked<Attachment> {
  const found: Attachment[] = [];
  const seen: string[] = [];
  walk(toCrlf(message), 0, found, seen);
  const first = found[0];
  if (first) return { ok: true, value: first };
  return refused(`the message has no report attachment (found ${seen.length ? seen.join(', ') : 'no body parts'}; a report is gzip, zip or XML)`);
}

function walk(entity: Buffer, depth: number, found: Attachment[], seen: string[]): void {
  if (depth > MAX_DEPTH || found.length > 0) return;
  const { header, body } = splitMessage(entity);
  let fields;
  try {
    fields = parseHeader(header);
  } catch {
    seen.push('an unreadable header');
    return;
  }
  const info = contentInfo(fields, 'text/plain');
  if (info.type.startsWith('multipart/')) {
    const boundary = info.params.boundary;
    const layout = boundary ? findParts(bufferSource(body), { start: 0, end: body.length }, boundary) : null;
    for (const part of layout?.parts ?? []) walk(body.subarray(part.start, part.end), depth + 1, found, seen);
    return;
  }
  if (info.type === 'message/rfc822') return walk(body, depth + 1, found, seen);
  const filename = filenameOf(fields, info.params);
  if (!Object.hasOwn(REPORT_TYPES, info.type) && !/\.(xml|gz|zip)$/i.test(filename)) {
    seen.push(info.type);
    return;
  }
  found.push({ contentType: info.type, filename, data: decodeBody(body, info.encoding) });
}

/** Content-Disposition's filename, else Content-Type's older name parameter. */
function filenameOf(fields: ReturnType<typeof parseHeader>, typeParams: Record<string, string>): string {
  const disposition = fieldsNamed(fields, 'Content-Disposition')[0];
  const params = disposition ? parseHeaderValue(fieldValue(disposition), { stripComments: true }).params : {};
  return (params.filename ?? typeParams.name ?? '').trim();
}

function decodeBody(body: Buffer, encoding: string): Buffer {
  if (encoding === 'base64') return Buffer.from(body.toString('latin1'), 'base64');
  if (encoding === 'quoted-printable') {
    const out: Buffer[] = [];
    decodeQuotedPrintable(bufferSource(body), { start: 0, end: body.length }, (octets) => out.push(Buffer.from(octets)));
    return Buffer.concat(out);
  }
  return body;
}
