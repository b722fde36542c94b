// What a body holds that a hop would change or read differently, learned
// chunk by chunk as the body streams past: its longest line, 8-bit octets,
// NUL. A body with none of them needs no normalization, whatever its size.
import { isAscii } from 'node:buffer';

const LF = 0x0a;
const CR = 0x0d;

export interface BodyFacts {
  /** Octets of the longest line, its CRLF not counted. */
  longest: number;
  eightBit: boolean;
  nul: boolean;
}

export class BodyScanner {
  #line = 0;
  #longest = 0;
  #eightBit = false;
  #nul = false;
  #lastCr = false;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (!this.#eightBit && !isAscii(chunk)) this.#eightBit = true;
    if (!this.#nul && chunk.indexOf(0) >= 0) this.#nul = true;
    let start = 0;
    for (let lf = chunk.indexOf(LF); lf >= 0; lf = chunk.indexOf(LF, start)) {
      const crBefore = lf > 0 ? chunk[lf - 1] === CR : this.#lastCr;
      this.#ended(this.#line + lf - start - (crBefore ? 1 : 0));
      start = lf + 1;
    }
    this.#line += chunk.length - start;
    this.#lastCr = chunk[chunk.length - 1] === CR;
  }

  facts(): BodyFacts {
    return { longest: Math.max(this.#longest, this.#line), eightBit: this.#eightBit, nul: this.#nul };
  }

  #ended(length: number): void {
    if (length > this.#longest) this.#longest = length;
    this.#line = 0;
  }
}

export function scanBody(body: Buffer): BodyFacts {
  const scanner = new BodyScanner();
  scanner.push(body);
  return scanner.facts();
}
