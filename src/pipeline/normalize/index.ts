// Pre-sign normalization: make the message survive every hop unchanged, so
// the DKIM signature made next stays valid (RFC 6376 §5.3).
// A hop may break lines over 998 octets or downgrade 8-bit data to 7-bit
// after we signed; we do it first, the same way, and sign the result. NUL
// octets, which RFC 2045 allows in no unencoded body, are read differently by
// different verifiers, so the parts holding them are encoded too.
//
// The common case is a message that needs nothing: one scan, and the very
// same Buffer comes back (or, for a file, no new file is written).
//
// The message is walked as a source read at any offset (a Buffer, or a file a
// window at a time); bodies are stretches of it and are encoded only as the
// result is written, so a file of any size is normalized in fixed memory.
import { closeSync, fstatSync, openSync, rmSync, writeSync } from 'node:fs';
import { createFileSync } from '../../common/file-create.ts';
import { fieldsNamed } from '../../message/header.ts';
import { normalizeEntity } from './entity.ts';
import { appendField, entityPieces, readEntity, replaceRaw } from './header-block.ts';
import { duplicatedAddressFields, mergeDuplicates } from './merge-duplicates.ts';
import { newMessageId, rfc5322Date } from '../../message/mime/missing-fields.ts';
import { OutputCheck } from './output-check.ts';
import { writePieces, type Piece } from './pieces.ts';
import { Refusal } from './refusal.ts';
import type { SmtpReply } from '../../smtp/reply.ts';
import { findingsUnsafe, has8bit, scanSpan, spanUnsafe } from '../../message/mime/scan.ts';
import { bufferSource, fileSource, WINDOW, type ByteSource } from '../../message/mime/source.ts';
import type { Output } from '../../message/mime/transfer-encoding.ts';
import type { Normalized, NormalizedFile, NormalizeOptions } from './options.ts';
import type { Walk } from './walk.ts';

const SPACE_BEFORE_COLON = /^([!-9;-~]+)[ \t]+:/;

/** `message` is CRLF (see toCrlf). Never throws: a problem comes back as an SMTP reply. */
export function normalize(message: Buffer, options: NormalizeOptions): Normalized {
  try {
    const source = bufferSource(message);
    const planned = plan(source, options);
    if (!planned.changed) return { ok: true, message, changes: planned.changes };
    const out: Buffer[] = [];
    write(source, planned, options, (octets) => out.push(octets));
    return { ok: true, message: Buffer.concat(out), changes: planned.changes };
  } catch (err) {
    return failure(err);
  }
}

/**
 * normalize() for a message in a file, written to another file: reads
 * `inPath` (a CRLF message) at most 64 KiB at a time and writes the result to
 * `outPath` (created, mode 0600), holding only header blocks and fixed-size
 * buffers, never a whole body. The output is the same as normalize() gives
 * for the file's content. When nothing changes, no output file is written;
 * when the message is refused, none is left behind. Synchronous, for a worker
 * thread. Never throws.
 */
export function normalizeFile(inPath: string, outPath: string, options: NormalizeOptions): NormalizedFile {
  let input: number | undefined;
  let output: number | undefined;
  try {
    input = openSync(inPath, 'r');
    const source = fileSource(input, fstatSync(input).size);
    const planned = plan(source, options);
    if (!planned.changed) return { ok: true, changed: false, changes: planned.changes };
    output = createFileSync(outPath, 0o600);
    const file = new FileWriter(output);
    const size = write(source, planned, options, (octets) => file.write(octets));
    file.flush();
    return { ok: true, changed: true, changes: planned.changes, header: planned.header, size };
  } catch (err) {
    if (output !== undefined) {
      closeSync(output);
      output = undefined;
      rmSync(outPath, { force: true });
    }
    return failure(err);
  } finally {
    if (input !== undefined) closeSync(input);
    if (output !== undefined) closeSync(output);
  }
}

function failure(err: unknown): { ok: false; reply: SmtpReply } {
  if (err instanceof Refusal) return { ok: false, reply: err.reply };
  // A bug here must not lose mail: the client keeps the message and retries.
  const why = err instanceof Error ? err.message : String(err);
  return { ok: false, reply: new Refusal(451, `4.3.0 Could not prepare the message for signing (${why}), try again later`).reply };
}

type Plan = { changed: false; changes: string[] } | { changed: true; changes: string[]; header: Buffer; body: Piece[] };

/** What to write: decided from the header blocks and scans of the message, nothing encoded yet. */
function plan(source: ByteSource, options: NormalizeOptions): Plan {
  const changes: string[] = [];
  const top = readEntity(source, { start: 0, end: source.length });
  if (typeof top === 'string') throw new Refusal(554, `5.6.0 Malformed header: ${top}`);
  const fields = top.header.fields;
  const needDate = options.addDate && fieldsNamed(fields, 'Date').length === 0;
  const needId = options.addMessageId && fieldsNamed(fields, 'Message-ID').length === 0;
  // "To : x" is obsolete syntax (RFC 5322 §4.5) that some verifiers (dkimpy)
  // refuse to parse at all; relaxed canonicalization reads both forms alike.
  const spaced = fields.filter((f) => SPACE_BEFORE_COLON.test(f.raw));
  const duplicated = options.mergeDuplicates ? duplicatedAddressFields(top.header) : [];
  // The header block and the body apart (no line spans the empty line between them): the body's
  // findings serve again for its own walk below, and the intake's, when given, spare scanning it at all.
  const known = options.bodyFacts;
  const bodyFound = known && known.start === top.body.start && top.body.end === source.length ? known.findings : scanSpan(source, top.body);
  const unsafe =
    spanUnsafe(source, { start: 0, end: top.body.start }, options.eightBitMime) ||
    findingsUnsafe(bodyFound, options.eightBitMime) ||
    (!(options.smtpUtf8 ?? options.eightBitMime) && has8bit(top.header.original));
  if (!unsafe && !needDate && !needId && spaced.length === 0 && duplicated.length === 0) return { changed: false, changes };
  for (const field of spaced) {
    replaceRaw(top.header, field, field.raw.replace(SPACE_BEFORE_COLON, '$1:'));
    changes.push(`removed the space before the colon of ${field.name}:`);
  }

  const walk: Walk = { options, changes, source };
  for (const name of duplicated) mergeDuplicates(top.header, name, walk);
  const body = unsafe ? normalizeEntity(top, '', 'message', 'text/plain', 0, walk, bodyFound) : null;
  // Appended after the last field, not prepended: the top of the header is
  // where trace fields (Received:, and our DKIM-Signature:) go, newest first
  // (RFC 5321 §4.4), and an originator field above them would read as trace.
  // Appending also leaves every existing field, and their order, as they were.
  if (needDate) {
    appendField(top.header, 'Date', rfc5322Date(options.now ?? new Date()));
    changes.push('added Date:');
  }
  if (needId) {
    appendField(top.header, 'Message-ID', newMessageId(options.messageIdDomain));
    changes.push('added Message-ID:');
  }
  if (changes.length === 0) return { changed: false, changes };
  const [header, ...rest] = entityPieces(top, body);
  const separator = rest[0];
  return {
    changed: true,
    changes,
    header: Buffer.isBuffer(separator) ? Buffer.concat([header as Buffer, separator]) : (header as Buffer),
    body: rest.slice(Buffer.isBuffer(separator) ? 1 : 0),
  };
}

/** Writes the planned message; returns its size. */
function write(source: ByteSource, planned: Plan & { changed: true }, options: NormalizeOptions, out: Output): number {
  // Belt and braces: never sign something a hop would still have to change.
  const check = new OutputCheck(options.eightBitMime);
  const checked = check.passTo(out);
  writePieces(source, [planned.header, ...planned.body], checked);
  check.end();
  return check.size;
}

/** Small writes are gathered into one buffer, so a header or a CRLF is not a system call of its own. */
class FileWriter {
  private readonly buf = Buffer.allocUnsafe(WINDOW);
  private n = 0;
  private readonly fd: number;
  constructor(fd: number) {
    this.fd = fd;
  }

  write(octets: Buffer): void {
    if (this.n + octets.length > this.buf.length || octets.length >= this.buf.length / 2) this.flush();
    if (octets.length >= this.buf.length / 2) {
      writeAll(this.fd, octets);
      return;
    }
    octets.copy(this.buf, this.n);
    this.n += octets.length;
  }

  flush(): void {
    writeAll(this.fd, this.buf.subarray(0, this.n));
    this.n = 0;
  }
}

function writeAll(fd: number, octets: Buffer): void {
  for (let at = 0; at < octets.length;) at += writeSync(fd, octets, at, octets.length - at);
}
