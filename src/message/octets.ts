// A message's octets as the relay passes them along: read as often as
// needed (hashing, self-check, spooling, each delivery attempt) without ever
// being held whole. Small things (a DSN, a notice, the `sign` command's
// input) live in memory; a received message lives in its file.
import { isAscii } from 'node:buffer';
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
}

/** Large enough that a read costs little per octet, small enough that many sessions fit in memory. */
export const CHUNK = 64 * 1024;

export function bufferOctets(data: Buffer): Octets {
  return {
    size: data.length,
    async *chunks() {
      for (let at = 0; at < data.length; at += CHUNK) yield data.subarray(at, at + CHUNK);
    },
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
      const file = await open(path, 'r');
      try {
        const buffer = Buffer.allocUnsafe(Math.min(CHUNK, size));
        for (let at = 0; at < size;) {
          const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, size - at), start + at);
          // A file cut short under us must not pass for the whole message.
          if (bytesRead === 0) throw new Error(`${path}: expected ${size} octets from ${start}, the file ends after ${at}`);
          at += bytesRead;
          yield buffer.subarray(0, bytesRead);
        }
      } finally {
        await file.close();
      }
    },
  };
}

export function joinOctets(...parts: Octets[]): Octets {
  return {
    size: parts.reduce((sum, p) => sum + p.size, 0),
    async *chunks() {
      for (const part of parts) yield* part.chunks();
    },
  };
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
