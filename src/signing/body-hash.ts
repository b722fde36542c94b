// The bh= value: SHA-256 over the canonical body (RFC 6376 §3.7), fed in
// chunks so a large body is never copied whole.

import { createHash, type Hash } from 'node:crypto';
import { RelaxedBody } from './canonicalization/relaxed.ts';
import { SimpleBody } from './canonicalization/simple.ts';
import type { BodyCanonicalizer, Canonicalization } from './canonicalization/types.ts';

export class BodyHasher {
  #hash: Hash = createHash('sha256');
  #canon: BodyCanonicalizer;
  #limit: number;
  #length = 0;
  #hashed = 0;
  #digest: string | undefined;

  /**
   * @param limit hash only the first `limit` canonical octets (the l= tag);
   *   the canonical length is still counted in full.
   */
  constructor(canonicalization: Canonicalization, limit = Infinity) {
    if (!(limit >= 0)) throw new RangeError(`body length limit must be >= 0, got ${limit}`);
    this.#limit = limit;
    const sink = (bytes: Buffer): void => {
      this.#length += bytes.length;
      const room = this.#limit - this.#hashed;
      if (room <= 0) return;
      const part = bytes.length > room ? bytes.subarray(0, room) : bytes;
      this.#hash.update(part);
      this.#hashed += part.length;
    };
    this.#canon = canonicalization === 'relaxed' ? new RelaxedBody(sink) : new SimpleBody(sink);
  }

  update(chunk: Buffer): this {
    if (this.#digest !== undefined) throw new Error('BodyHasher.update() after digest()');
    this.#canon.update(chunk);
    return this;
  }

  /** Ends the body and returns the base64 SHA-256 (idempotent). */
  digest(): string {
    if (this.#digest === undefined) {
      this.#canon.end();
      this.#digest = this.#hash.digest('base64');
    }
    return this.#digest;
  }

  /** Octets of canonical body seen so far (final once digest() was called). */
  get canonicalLength(): number {
    return this.#length;
  }

  /** Octets that went into the hash: min(canonicalLength, limit). */
  get hashedLength(): number {
    return this.#hashed;
  }
}
