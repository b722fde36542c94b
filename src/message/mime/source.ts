// The message being normalized, read at any offset: a Buffer in memory or a
// file read a window at a time, so a message larger than memory can be
// walked. Bodies are spans of it, never copies.
import { readSync } from 'node:fs';

/** Reads from a file go at most this far at once. */
export const WINDOW = 64 * 1024;

export interface ByteSource {
  readonly length: number;
  /** Octets from `offset` (< length): at least one, at most `max`. The view stays valid. */
  chunk(offset: number, max: number): Buffer;
  /** Exactly the octets [start, end): for header blocks and short stretches. */
  read(start: number, end: number): Buffer;
}

/** A stretch [start, end) of the source. */
export interface Span {
  start: number;
  end: number;
}

export function bufferSource(buf: Buffer): ByteSource {
  return {
    length: buf.length,
    chunk: (offset, max) => buf.subarray(offset, Math.min(buf.length, offset + max)),
    read: (start, end) => buf.subarray(start, end),
  };
}

/**
 * A file read with readSync, one window of at most 64 KiB at a time. A new
 * window is a new Buffer, so views handed out earlier stay as they were.
 */
export function fileSource(fd: number, length: number): ByteSource {
  let window = Buffer.alloc(0);
  let windowAt = 0;
  const fill = (into: Buffer, position: number): void => {
    for (let got = 0; got < into.length;) {
      const n = readSync(fd, into, got, Math.min(WINDOW, into.length - got), position + got);
      if (n === 0) throw new Error('the message file is shorter than when it was opened');
      got += n;
    }
  };
  return {
    length,
    chunk(offset, max) {
      if (offset < windowAt || offset >= windowAt + window.length) {
        window = Buffer.allocUnsafe(Math.min(WINDOW, length - offset));
        windowAt = offset;
        fill(window, offset);
      }
      const from = offset - windowAt;
      return window.subarray(from, Math.min(window.length, from + max));
    },
    read(start, end) {
      if (start >= windowAt && end <= windowAt + window.length) return window.subarray(start - windowAt, end - windowAt);
      const out = Buffer.allocUnsafe(end - start);
      fill(out, start);
      return out;
    },
  };
}

/** Each stretch of [start, end) in order, as views of at most 64 KiB. */
export function* chunks(src: ByteSource, start: number, end: number): Generator<Buffer> {
  for (let at = start; at < end;) {
    const c = src.chunk(at, Math.min(WINDOW, end - at));
    yield c;
    at += c.length;
  }
}

/** The first occurrence of `needle` in [from, end), or -1. Searched a window at a time, overlapping by the needle. */
export function indexOf(src: ByteSource, needle: Buffer, from: number, end: number): number {
  const n = needle.length;
  for (let at = from; end - at >= n;) {
    let view = src.chunk(at, end - at);
    if (view.length < n) view = src.read(at, Math.min(end, at + n + WINDOW));
    const i = view.indexOf(needle);
    if (i >= 0) return at + i;
    if (at + view.length >= end) return -1;
    at += view.length - n + 1;
  }
  return -1;
}

/** The first octet in [from, end) that is not `skip`-ed, or end. */
export function skipWhile(src: ByteSource, from: number, end: number, skip: (c: number) => boolean): number {
  for (let at = from; at < end;) {
    const view = src.chunk(at, end - at);
    for (let i = 0; i < view.length; i++) if (!skip(view[i]!)) return at + i;
    at += view.length;
  }
  return end;
}

/** The octet at `i`, or undefined outside [0, end). */
export function octetAt(src: ByteSource, i: number, end = src.length): number | undefined {
  return i >= 0 && i < end ? src.chunk(i, 1)[0] : undefined;
}

export function endsWithCrlf(src: ByteSource, span: Span): boolean {
  return span.end - span.start >= 2 && octetAt(src, span.end - 2) === 0x0d && octetAt(src, span.end - 1) === 0x0a;
}
