// A message as the pipeline takes it: the header block in memory (it is
// parsed, checked and rewritten), the body as octets that may live in a file
// (it is only scanned, hashed and copied), and what a scan of the body found.
import { scanSpan, type Findings } from './mime/scan.ts';
import { bufferSource } from './mime/source.ts';
import { splitMessage } from './header.ts';
import { toCrlf } from './lines.ts';
import { bufferOctets, type Octets } from './octets.ts';

export interface IncomingMessage {
  /** The header block: its fields, each with its CRLF, then the empty line when there is one. */
  header: Buffer;
  /** The header block was longer than the limit: `header` is its start only. */
  headerCut: boolean;
  /** Everything after the header block. */
  body: Octets;
  /** What a hop would change in the body: decides whether it needs normalizing at all. */
  bodyFacts: Findings;
  /** The whole message in one file, when it was too large for memory: normalization then works file to file. */
  file?: string | undefined;
  /** Bare CR or LF were made CRLF. */
  crlfFixed: boolean;
  /** Removes the message's files, if any. Call once its octets are no longer read. */
  discard(): Promise<void>;
}

/** A message already in memory (the `sign` command, notices, tests). */
export function messageFromBuffer(raw: Buffer): IncomingMessage {
  const message = toCrlf(raw);
  const length = headerBlockLength(message);
  const body = message.subarray(length);
  return {
    header: message.subarray(0, length),
    headerCut: false,
    body: bufferOctets(body),
    bodyFacts: scanSpan(bufferSource(body), { start: 0, end: body.length }),
    crlfFixed: message !== raw,
    discard: () => Promise.resolve(),
  };
}

/** Where the header block ends: after the first empty line (RFC 5322 §2.1), or at the end of the message. */
export function headerBlockLength(message: Buffer): number {
  return message.length - splitMessage(message).body.length;
}

/** The header block at the start of `message`, reading no further than it (or `max` octets). */
export async function readHeaderBlock(message: Octets, max: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let length = 0;
  for await (const chunk of message.chunks()) {
    parts.push(Buffer.from(chunk));
    length += chunk.length;
    const seen = Buffer.concat(parts);
    const end = headerBlockLength(seen);
    if (end < seen.length || length >= max) return seen.subarray(0, Math.min(end, max));
  }
  return Buffer.concat(parts).subarray(0, max);
}

/** The fields of a header block, without the empty line that ends it. */
export function headerFields(block: Buffer): Buffer {
  if (block.length === 2 && block[0] === 0x0d && block[1] === 0x0a) return block.subarray(0, 0);
  const separated = block.length >= 4 && block.subarray(-4).equals(CRLFCRLF);
  return separated ? block.subarray(0, -2) : block;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');
