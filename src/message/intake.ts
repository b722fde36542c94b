// Receiving DATA: the octets are made CRLF as they arrive, the header block
// is kept apart (it is parsed, checked and rewritten), the body is scanned
// for what normalization would have to fix, and a message too large to keep
// in memory goes to a file as it arrives. Memory per session is the header
// block plus SPILL_AT octets at most, whatever the message size.
//
// A file's pieces are gathered and written WRITE_AT octets at a time: a
// client sending small pieces (a slow link, a hostile sender) would
// otherwise cost a system call and a trip to libuv's pool for each.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { createFile } from '../common/file-create.ts';
import { FindingsScanner } from './mime/scan.ts';
import { CrlfStream } from './crlf-stream.ts';
import type { IncomingMessage } from './incoming.ts';
import { fileOctets, heldOctets } from './octets.ts';
import { spoolError } from '../common/spool-error.ts';

/**
 * Messages up to this size stay in memory: 200 sessions (listen.maxClients'
 * default) at once then hold 25 MiB at most; larger ones are written out.
 */
export const SPILL_AT = 128 * 1024;
/**
 * Gathered octets written out together. With one write in flight and one
 * socket chunk (64 KiB at most) beside what waits, a session still holds
 * SPILL_AT octets at most.
 */
const WRITE_AT = 32 * 1024;
/** A client that pauses finds what it sent on disk this long after, not only once more comes. */
const FLUSH_AFTER_MS = 20;
/** Intake files in <queue.dir>/tmp/: removed when done, and at start-up after a crash. */
const PREFIX = 'intake-';

/** `size`: the octets as received. */
export type Received = { ok: true; message: IncomingMessage; size: number } | { ok: false; size: number };

export interface IntakeLimits {
  /** listen.maxMessageSize, counted on the octets as received. */
  maxSize: number;
  /** headers.maxSize: longer header blocks are kept only in part. */
  maxHeader: number;
  /** Where large messages are written: <queue.dir>/tmp. */
  dir: string;
}

/** Where the relay writes messages too large for memory while they are received: beside the spool's own temporary files. */
export function intakeDir(queueDir: string): string {
  return join(queueDir, 'tmp');
}

/**
 * Reads DATA to its end, even past the size limit (the client is owed a
 * reply after its final dot). When the file cannot be written (disk full)
 * the source is still read to its end, then SpoolUnavailableError is thrown.
 */
export async function receiveMessage(source: AsyncIterable<Buffer>, limits: IntakeLimits): Promise<Received> {
  const crlf = new CrlfStream();
  const header = new HeaderCut(limits.maxHeader);
  const scanner = new FindingsScanner();
  // The message while it fits in memory; once it goes to a file, what waits to be written.
  const memory: Buffer[] = [];
  let waiting = 0;
  let kept = 0;
  let received = 0;
  let file: { path: string; handle: FileHandle } | null = null;
  let failed: Error | null = null;
  // One chain of writes, so they land in order; its first error is kept for the end of DATA.
  let writes: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;

  /** Hands what waits to the chain of writes; resolves when all written so far is on disk (or failed). */
  const flush = (): Promise<void> => {
    clearTimeout(timer);
    timer = undefined;
    if (file && !failed && waiting > 0) {
      const handle = file.handle;
      const parts = memory.splice(0);
      waiting = 0;
      writes = writes
        .then(() => (failed ? undefined : writeAll(handle, parts)))
        .catch((err: Error) => {
          failed ??= err;
          memory.length = 0;
        });
    }
    return writes;
  };

  const take = async (out: Buffer): Promise<void> => {
    if (out.length === 0) return;
    const body = header.push(out);
    if (body) scanner.push(body);
    kept += out.length;
    if (failed) return;
    memory.push(out);
    waiting += out.length;
    if (!file && kept > SPILL_AT) {
      try {
        file = await openIntakeFile(limits.dir);
      } catch (err) {
        failed = err as Error;
      }
    }
    if (failed) memory.length = 0;
    else if (file && waiting >= WRITE_AT) await flush();
    else if (file) timer ??= setTimeout(flush, FLUSH_AFTER_MS);
  };

  try {
    for await (const chunk of source) {
      received += chunk.length;
      // Past the limit the rest is read and dropped: the answer is 552 anyway.
      if (received > limits.maxSize) continue;
      await take(crlf.push(chunk));
    }
    if (received > limits.maxSize) {
      await discardFile(file, writes, timer);
      return { ok: false, size: received };
    }
    await take(crlf.end());
    await flush();
    if (failed) throw spoolError(failed);
  } catch (err) {
    await discardFile(file, writes, timer);
    throw err;
  }

  const opened = file as { path: string; handle: FileHandle } | null;
  if (opened) await opened.handle.close();
  const headerBlock = header.block();
  const bodyStart = headerBlock.length;
  const bodySize = header.cut ? 0 : kept - bodyStart;
  const path = opened?.path;
  return {
    ok: true,
    size: received,
    message: {
      header: headerBlock,
      headerCut: header.cut,
      // In memory, the body is the chunks as they came, never copied into one: a message's Buffers live until
      // it is delivered, and each one V8 counts against its next full collection.
      body: path ? fileOctets(path, bodyStart, bodySize) : heldOctets(bodySize ? partsFrom(memory, bodyStart) : []),
      bodyFacts: scanner.end(),
      file: path,
      crlfFixed: crlf.changed,
      discard: () => (path ? removeIntakeFiles(path) : Promise.resolve()),
    },
  };
}

/** Removes what a crashed process left in `dir`: no client was told 250 for any of it. */
export function removeStaleIntakeFiles(dir: string): number {
  let removed = 0;
  try {
    for (const name of readdirSync(dir)) {
      if (!name.startsWith(PREFIX)) continue;
      rmSync(join(dir, name), { force: true });
      removed++;
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  return removed;
}

/**
 * Collects the header block from CRLF chunks; hands back the part of each
 * chunk past it. Each chunk is searched once, with the three octets before it
 * (where an empty line may begin), and copied once: a header trickled in small
 * pieces costs what it would in one.
 */
class HeaderCut {
  cut = false;
  /** The header seen so far, as copies: a chunk may be a slice of a larger buffer that would stay alive with it. */
  #parts: Buffer[] = [];
  #length = 0;
  /** The last octets seen (at most three), to find an empty line across two chunks. */
  #tail = Buffer.alloc(0);
  #block: Buffer | undefined;
  #done = false;
  #limit: number;

  constructor(limit: number) {
    // Room for the limit itself and the empty line, so "too large" is told apart from "just fits".
    this.#limit = limit + 4;
  }

  /** The part of `chunk` that is body, or null while the header goes on. */
  push(chunk: Buffer): Buffer | null {
    if (this.#done) return chunk;
    const before = this.#length;
    const room = this.#limit + 1 - before;
    const piece = chunk.length > room ? chunk.subarray(0, room) : chunk;
    const window = this.#tail.length ? Buffer.concat([this.#tail, piece]) : piece;
    // A message that starts with its empty line has no header at all.
    const empty = before < 2 && window[0] === 0x0d && window[1] === 0x0a;
    const found = empty ? -1 : window.indexOf('\r\n\r\n');
    const end = empty ? 2 : found < 0 ? -1 : before - this.#tail.length + found + 4;
    this.#done = end >= 0 || before + piece.length > this.#limit;
    this.cut = end < 0 && this.#done;
    const kept = end >= 0 ? piece.subarray(0, end - before) : piece;
    this.#parts.push(Buffer.from(kept));
    this.#length += kept.length;
    if (!this.#done) this.#tail = Buffer.from(window.subarray(Math.max(0, window.length - 3)));
    return end >= 0 ? chunk.subarray(end - before) : null;
  }

  /** The header block; without an empty line, the whole message (up to the limit) is header. */
  block(): Buffer {
    this.#block ??= this.#parts.length === 1 ? this.#parts[0]! : Buffer.concat(this.#parts, this.#length);
    return this.#block;
  }
}

/** The octets of `parts` laid end to end from `start` on, as views of them. */
function partsFrom(parts: readonly Buffer[], start: number): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (const part of parts) {
    const end = at + part.length;
    if (end > start) out.push(at >= start ? part : part.subarray(start - at));
    at = end;
  }
  return out;
}

async function openIntakeFile(dir: string): Promise<{ path: string; handle: FileHandle }> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, `${PREFIX}${randomBytes(8).toString('hex')}.eml`);
  // A new file or an error, never someone else's file reused.
  return { path, handle: await createFile(path, 0o600) };
}

/** Writes `parts` end to end, in one system call unless the kernel takes less. */
async function writeAll(file: FileHandle, parts: Buffer[]): Promise<void> {
  let rest = parts;
  while (rest.length > 0) {
    let written = (await file.writev(rest)).bytesWritten;
    while (rest.length > 0 && written >= rest[0]!.length) written -= rest.shift()!.length;
    if (written > 0) rest[0] = rest[0]!.subarray(written);
  }
}

/** Closes and removes the intake file once the write in flight (whose errors no longer matter) is done. */
async function discardFile(file: { path: string; handle: FileHandle } | null, writes: Promise<void>, timer: NodeJS.Timeout | undefined): Promise<void> {
  clearTimeout(timer);
  if (!file) return;
  await writes;
  await file.handle.close().catch(() => undefined);
  await removeIntakeFiles(file.path);
}

async function removeIntakeFiles(path: string): Promise<void> {
  await Promise.all([rm(path, { force: true }), rm(`${path}.normalized`, { force: true })]);
}
