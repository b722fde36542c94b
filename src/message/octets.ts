// A message's octets as the relay passes them along: read as often as
// needed (hashing, self-check, spooling, each delivery attempt) without ever
// being held whole. Small things (a DSN, a notice, the `sign` command's
// input) live in memory; a received message lives in its file.
import { isAscii } from 'node:buffer';
import { closeSync, constants, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';

export interface Octets {
  readonly size: number;
  /**
   * The octets from the start, in chunks of at most CHUNK octets; each call
   * reads afresh. A chunk is valid until the next one is asked for (a file
   * is read into one reused buffer): copy it to keep it longer.
   */
  chunks(): AsyncIterable<Buffer>;
  /**
   * The octets as Buffers held in memory, in order, when they are: Buffers
   * that are never written to again, which a reader may keep. Undefined for
   * octets read from a file.
   */
  readonly held?: readonly Buffer[] | undefined;
}

/** Large enough that a read costs little per octet, small enough that many sessions fit in memory. */
export const CHUNK = 64 * 1024;

/** `data` is never written to again (see Octets.held). */
export function bufferOctets(data: Buffer): Octets {
  return {
    size: data.length,
    async *chunks() {
      for (let at = 0; at < data.length; at += CHUNK) yield data.subarray(at, at + CHUNK);
    },
    held: [data],
  };
}

/**
 * `size` octets of `path` from `start`, read when asked into one buffer per
 * reading: a large message read again and again (hashing, self-check,
 * spooling) leaves no garbage behind for the collector to catch up with.
 */
export function fileOctets(path: string, start: number, size: number): Octets {
  return {
    size,
    async *chunks() {
      if (size === 0) return;
      if (size <= SMALL_FILE) {
        const whole = readSmall(path, start, size);
        for (let at = 0; at < size; at += CHUNK) yield whole.subarray(at, at + CHUNK);
        return;
      }
      const file = await open(path, 'r');
      try {
        const buffer = Buffer.allocUnsafe(Math.min(CHUNK, size));
        for (let at = 0; at < size;) {
          const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, size - at), start + at);
          if (bytesRead === 0) throw cutShort(path, start, size, at);
          at += bytesRead;
          yield buffer.subarray(0, bytesRead);
        }
      } finally {
        await file.close();
      }
    },
  };
}

/**
 * Up to this size a file is read at once, on the event loop: a message the
 * relay has just written is in the page cache, and one read(2) of it costs
 * less than the trips through the thread pool (open, a read a chunk, close)
 * that the asynchronous calls take, each waking a thread. Intake holds
 * messages of this size in memory whole too (SPILL_AT).
 */
const SMALL_FILE = 2 * CHUNK;

/**
 * The first read after a write would update the file's atime under relatime,
 * a journal entry that may wait for a commit under way: not on the event
 * loop. O_NOATIME is allowed on the process's own files (open(2)).
 */
const NO_ATIME = constants.O_RDONLY | (constants.O_NOATIME ?? 0);

function openForReading(path: string): number {
  try {
    return openSync(path, NO_ATIME);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
    return openSync(path, constants.O_RDONLY);
  }
}

function readSmall(path: string, start: number, size: number): Buffer {
  const fd = openForReading(path);
  try {
    const buffer = Buffer.allocUnsafe(size);
    for (let at = 0; at < size;) {
      const bytesRead = readSync(fd, buffer, at, size - at, start + at);
      if (bytesRead === 0) throw cutShort(path, start, size, at);
      at += bytesRead;
    }
    return buffer;
  } finally {
    closeSync(fd);
  }
}

/** A file cut short under us must not pass for the whole message. */
function cutShort(path: string, start: number, size: number, at: number): Error {
  return new Error(`${path}: expected ${size} octets from ${start}, the file ends after ${at}`);
}

export function joinOctets(...parts: Octets[]): Octets {
  return {
    size: parts.reduce((sum, p) => sum + p.size, 0),
    async *chunks() {
      for (const part of parts) yield* part.chunks();
    },
    held: parts.every((p) => p.held) ? parts.flatMap((p) => p.held!) : undefined,
  };
}

/** Buffers held in memory (never written to again), in order, as one message's octets. */
export function heldOctets(parts: Buffer | readonly Buffer[]): Octets {
  return Buffer.isBuffer(parts) ? bufferOctets(parts) : joinOctets(...parts.map(bufferOctets));
}

/** A fresh stream of the octets, for APIs that take one (nodemailer's `raw`); a stream holds its chunks, so they are copies. */
export function octetStream(octets: Octets): Readable {
  async function* copies(): AsyncGenerator<Buffer> {
    for await (const chunk of octets.chunks()) yield Buffer.from(chunk);
  }
  return Readable.from(copies(), { objectMode: false });
}

/** All the octets in one Buffer: only for what is known to be small. */
export async function readOctets(octets: Octets): Promise<Buffer> {
  const whole = Buffer.allocUnsafe(octets.size);
  let at = 0;
  for await (const chunk of octets.chunks()) at += chunk.copy(whole, at);
  return whole.subarray(0, at);
}

export async function hasEightBit(octets: Octets): Promise<boolean> {
  for await (const chunk of octets.chunks()) if (!isAscii(chunk)) return true;
  return false;
}
