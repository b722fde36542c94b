// "simple" canonicalization (RFC 6376 §3.4.1, §3.4.3): bytes stay as they
// are, except that trailing empty lines of the body are ignored.

import { CR, LF, emitCrlfs, type BodyCanonicalizer, type BodySink } from './types.ts';

const CR_BYTE = Buffer.from([CR]);
const CRLF = Buffer.from('\r\n', 'latin1');

/** A header field unchanged (raw is the field as written, folds included), plus its CRLF. */
export function simpleHeader(raw: string): string {
  return raw + '\r\n';
}

/**
 * Streams a CRLF body. The run of CRLFs after the last content byte is held
 * back as a count: it is emitted only if content follows, and at the end it
 * collapses to the single CRLF that ends the last line (an empty body
 * becomes one CRLF). Content goes to the sink as views of the input chunks.
 */
export class SimpleBody implements BodyCanonicalizer {
  #sink: BodySink;
  #heldCrlfs = 0;
  /** The previous chunk ended in CR; the next chunk decides whether it is a line break. */
  #pendingCr = false;

  constructor(sink: BodySink) {
    this.#sink = sink;
  }

  update(chunk: Buffer): void {
    if (chunk.length === 0) return;
    let start = 0;
    if (this.#pendingCr) {
      this.#pendingCr = false;
      if (chunk[0] === LF) {
        this.#heldCrlfs++;
        start = 1;
      } else {
        this.#content(CR_BYTE); // a bare CR is content, not a line break
      }
    }
    // Peel the trailing CRLF pairs (and a final lone CR) off the chunk.
    let end = chunk.length;
    const endsInCr = end > start && chunk[end - 1] === CR;
    if (endsInCr) end--;
    let pairs = 0;
    while (end - start >= 2 && chunk[end - 1] === LF && chunk[end - 2] === CR) {
      end -= 2;
      pairs++;
    }
    if (end > start) this.#content(chunk.subarray(start, end));
    this.#heldCrlfs += pairs;
    this.#pendingCr = endsInCr;
  }

  end(): void {
    if (this.#pendingCr) {
      this.#pendingCr = false;
      this.#content(CR_BYTE);
    }
    // Held empty lines are dropped; one CRLF ends the last line or stands for an empty body.
    this.#heldCrlfs = 0;
    this.#sink(CRLF);
  }

  #content(bytes: Buffer): void {
    emitCrlfs(this.#sink, this.#heldCrlfs);
    this.#heldCrlfs = 0;
    this.#sink(bytes);
  }
}
