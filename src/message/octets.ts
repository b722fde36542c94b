// A message's octets as the relay passes them along: read as often as
// needed (hashing, self-check, spooling, each delivery attempt) without ever
// being held whole. Small things (a DSN, a notice, the `sign` command's
// input) live in memory; a received message lives in its file.
import { isAscii } from 'node:buffer';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';

export interface Octets {
  readonly size: number;
  /** The octets from the start, in chunks of at most CHUNK octets; each call reads afresh. */
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

/** The octets of `path` from `start` to its end (`size` octets), read when asked. */
export function fileOctets(path: string, start: number, size: number): Octets {
  return {
    size,
    async *chunks() {
      if (size === 0) return;
      const stream = createReadStream(path, { start, end: start + size - 1, highWaterMark: CHUNK });
      let seen = 0;
      for await (const chunk of stream) {
        seen += (chunk as Buffer).length;
        yield chunk as Buffer;
      }
      // A file cut short under us must not pass for the whole message.
      if (seen !== size) throw new Error(`${path}: expected ${size} octets from ${start}, read ${seen}`);
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

/** A fresh stream of the octets, for APIs that take one (nodemailer's `raw`). */
export function octetStream(octets: Octets): Readable {
  return Readable.from(octets.chunks(), { objectMode: false });
}

/** All the octets in one Buffer: only for what is known to be small. */
export async function readOctets(octets: Octets): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of octets.chunks()) parts.push(chunk);
  return Buffer.concat(parts);
}

export async function hasEightBit(octets: Octets): Promise<boolean> {
  for await (const chunk of octets.chunks()) if (!isAscii(chunk)) return true;
  return false;
}
