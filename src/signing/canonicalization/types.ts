// Shared shapes for the two DKIM canonicalization algorithms (RFC 6376 §3.4).

export type Canonicalization = 'relaxed' | 'simple';

/**
 * Receives canonical body bytes. It must consume them before returning:
 * canonicalizers may reuse the buffer they pass (a hash's update() does).
 */
export type BodySink = (bytes: Buffer) => void;

/** A streaming body canonicalizer: chunks may split anywhere, even inside CRLF. */
export interface BodyCanonicalizer {
  update(chunk: Buffer): void;
  /** Flushes what the body's end decides (the final CRLF); call once. */
  end(): void;
}

export const CR = 0x0d;
export const LF = 0x0a;
export const SP = 0x20;
export const HTAB = 0x09;

// Trailing empty lines are held back as a count, not as bytes, so a body of
// millions of blank lines costs no memory; when content follows they are
// re-emitted from this block, a bounded piece at a time.
const CRLF_BLOCK = Buffer.from('\r\n'.repeat(1024), 'latin1');

/** Emits `count` CRLFs to the sink in bounded pieces. */
export function emitCrlfs(sink: BodySink, count: number): void {
  const perBlock = CRLF_BLOCK.length / 2;
  while (count > 0) {
    const n = Math.min(count, perBlock);
    sink(CRLF_BLOCK.subarray(0, n * 2));
    count -= n;
  }
}
