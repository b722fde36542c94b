// CRLF line ends, chunk by chunk: the streaming form of toCrlf (lines.ts),
// for a message that is never held whole. A CR at the end of a chunk waits
// for the next one, which tells whether it was half of a CRLF.
import { hasBareLineEnd, rewriteLineEnds } from './lines.ts';

const CR = 0x0d;
const LF = 0x0a;
const CRLF = Buffer.from('\r\n');
const CR_ONLY = Buffer.from('\r');

export class CrlfStream {
  /** Whether any line end had to be rewritten. */
  changed = false;
  /** A CR ended the last chunk and was held back. */
  #heldCr = false;
  /** Whether what was written so far ends in CRLF. */
  #endsWithCrlf = true;
  #written = 0;

  /** The chunk with every line end made CRLF (a CR at its end comes out with the next chunk). */
  push(chunk: Buffer): Buffer {
    if (chunk.length === 0) return chunk;
    const holdLast = chunk[chunk.length - 1] === CR;
    const body = holdLast ? chunk.subarray(0, -1) : chunk;
    // A CR held from the chunk before is half of a CRLF if this one starts with LF, else a bare CR.
    const paired = this.#heldCr && body[0] === LF;
    const prefix = !this.#heldCr ? null : paired ? CR_ONLY : CRLF;
    if (prefix === CRLF) this.changed = true;
    // Every LF with its CR and every CR with its LF (a leading LF pairs with the held CR): passed as it is.
    let out = hasBareLineEnd(body, paired ? 1 : 0) ? this.#slow(body, paired) : body;
    if (prefix) out = Buffer.concat([prefix, out]);
    this.#heldCr = holdLast;
    this.#note(out);
    return out;
  }

  /** What is still owed at the end: a held CR's LF, or a final CRLF (RFC 5322 §2.1 ends every line with one). */
  end(): Buffer {
    let out = Buffer.alloc(0);
    if (this.#heldCr) {
      out = CRLF;
      this.changed = true;
    } else if (this.#written > 0 && !this.#endsWithCrlf) {
      out = CRLF;
      this.changed = true;
    }
    this.#heldCr = false;
    this.#note(out);
    return out;
  }

  #note(out: Buffer): void {
    if (out.length === 0) return;
    this.#written += out.length;
    // Output line ends are all CRLF by now, so an LF at the end is one.
    this.#endsWithCrlf = out[out.length - 1] === LF;
  }

  /** `paired`: a leading LF completes a CR already written. */
  #slow(body: Buffer, paired: boolean): Buffer {
    this.changed = true;
    const out = Buffer.allocUnsafe(body.length * 2);
    // A leading LF that completes the CR already written is copied as it is.
    const start = paired ? 1 : 0;
    if (paired) out[0] = LF;
    return out.subarray(0, rewriteLineEnds(body, start, out, start));
  }
}
