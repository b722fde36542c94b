// "relaxed" canonicalization (RFC 6376 §3.4.2, §3.4.4): tolerates the
// whitespace and case changes that MTAs commonly make in transit.

import { trimEndOf } from '../../message/trim.ts';
import { CR, HTAB, LF, SP, type BodyCanonicalizer, type BodySink } from './types.ts';

/**
 * One header field (raw, folds included, no final CRLF) in relaxed form:
 * name lower-cased, value unfolded, WSP runs as one SP, no WSP around the
 * colon or at the end of the value.
 */
export function relaxedHeader(raw: string): string {
  const colon = raw.indexOf(':');
  if (colon < 0) throw new Error('header field has no colon');
  const name = trimEndOf(raw.slice(0, colon), ' \t').toLowerCase();
  const value = raw
    .slice(colon + 1)
    .replace(/\r\n(?=[ \t])/g, '')
    .replace(/[ \t]+/g, ' ')
    .replace(/^ | $/g, '');
  return `${name}:${value}\r\n`;
}

const OUT_SIZE = 64 * 1024;
/**
 * The output of every RelaxedBody: each update() hands what it wrote to its
 * sink before it returns, so the buffer holds nothing between calls. One
 * per body would be 64 KiB more a message for the collector (memory outside
 * V8's heap, which brings its full collections nearer until one runs).
 */
const OUT = Buffer.allocUnsafe(OUT_SIZE);

/** Shorter runs are not worth leaving the byte loop for. */
const MIN_RUN = 64;
/** The byte loop's stretch after a short run: from a few lines to a quarter of a chunk. */
const MIN_STRETCH = 256;
const MAX_STRETCH = 16 * 1024;

/**
 * Where relaxed canonicalization may change the body: a TAB, an empty line
 * (natively searched for), and a SP before SP or CR (see spaceBeforeSpaceOrCr).
 */
const EMPTY_LINE = Buffer.from('\r\n\r\n');
const TRIGGERS: ((chunk: Buffer, from: number) => number)[] = [
  (chunk, from) => chunk.indexOf(HTAB, from),
  (chunk, from) => chunk.indexOf(EMPTY_LINE, from),
  spaceBeforeSpaceOrCr,
];

/**
 * The first position at or after `from` of a SP followed by SP or CR, or -1.
 * Native searches for "  " and " \r" stop at every space of the text (their
 * first octet) and cost some 1 ns an octet each. Every such pair from the
 * first SP on holds an octet at an odd distance from it, so this reads every
 * other octet from there (text without a SP, such as base64, is searched
 * natively alone).
 */
export function spaceBeforeSpaceOrCr(chunk: Buffer, from: number): number {
  const space = chunk.indexOf(SP, from);
  if (space < 0) return -1;
  const last = chunk.length - 1;
  for (let i = space + 1; i <= last; i += 2) {
    const c = chunk[i]!;
    if (c !== SP && c !== CR) continue;
    // The pair ending here starts first (at or after the first SP: i starts one past it).
    if (chunk[i - 1] === SP) return i - 1;
    if (c === SP && i < last && (chunk[i + 1] === SP || chunk[i + 1] === CR)) return i;
  }
  return -1;
}

/**
 * Finds runs of a chunk that relaxed canonicalization leaves as they are.
 * Each trigger's next position is remembered until passed, so a chunk is
 * searched once per trigger: linear, however many runs it holds.
 */
class VerbatimRuns {
  readonly #chunk: Buffer;
  readonly #next = TRIGGERS.map(() => -1);

  constructor(chunk: Buffer) {
    this.#chunk = chunk;
  }

  /**
   * The end of the run starting at `from` (after content, nothing held). The
   * run stops short of the chunk's last bytes and ends on a content octet:
   * never on WSP, a CR or a CRLF, whose fate depends on what follows.
   */
  end(from: number): number {
    const chunk = this.#chunk;
    let end = chunk.length - 4;
    for (let k = 0; k < TRIGGERS.length; k++) {
      if (this.#next[k]! < from && this.#next[k] !== Infinity) {
        const at = TRIGGERS[k]!(chunk, from);
        this.#next[k] = at < 0 ? Infinity : at;
      }
      end = Math.min(end, this.#next[k]!);
    }
    while (end > from) {
      const c = chunk[end - 1];
      if (c !== SP && c !== HTAB && c !== CR && c !== LF) break;
      end--;
    }
    return end;
  }
}

/**
 * Streams a CRLF body byte by byte (whitespace handling must look at every
 * byte anyway) into a fixed 64 KiB output buffer handed to the sink when
 * full and at the end of each update(), so memory stays bounded whatever
 * the body size.
 *
 * Deferred state: a WSP run becomes one SP only when content follows on the
 * same line; line breaks after the last content are held as a count and
 * emitted only when content follows; a CR at a chunk's end waits for the
 * next chunk to tell whether it starts a CRLF.
 */
export class RelaxedBody implements BodyCanonicalizer {
  #sink: BodySink;
  #o = 0;
  #heldCrlfs = 0;
  #wsp = false;
  #pendingCr = false;
  #hasContent = false;

  constructor(sink: BodySink) {
    this.#sink = sink;
  }

  update(chunk: Buffer): void {
    const n = chunk.length;
    if (n === 0) return;
    let i = 0;
    if (this.#pendingCr) {
      this.#pendingCr = false;
      if (chunk[0] === LF) {
        this.#heldCrlfs++;
        this.#wsp = false; // WSP at the end of a line is removed
        i = 1;
      } else {
        this.#put(CR); // a bare CR is ordinary content
      }
    }
    // State lives in locals in the loop: private field access per byte costs
    // several times the work itself. Common cases are written inline; the
    // rest goes through #put() with the fields synced around it.
    const out = OUT;
    let o = this.#o;
    let held = this.#heldCrlfs;
    let wsp = this.#wsp;
    let hasContent = false;
    const runs = new VerbatimRuns(chunk);
    // Runs are not looked for again before here. After a run too short to pass on, the byte loop
    // goes on for a stretch that doubles with each short run: in text with a place to change on
    // every line (trailing spaces of format=flowed, indentation), a search and a hash call per
    // line cost several times the byte loop, while clean text is passed on in whole runs.
    let runsFrom = 0;
    let stretch = 0;
    for (; i < n; i++) {
      // After content, with nothing held: skip to the next place where
      // relaxed canonicalization could change anything, hashing what lies
      // between straight from the input.
      if (held === 0 && !wsp && i >= runsFrom && n - i > MIN_RUN) {
        const end = runs.end(i);
        if (end - i >= MIN_RUN) {
          stretch = 0;
          this.#o = o;
          this.#flush();
          o = 0;
          this.#sink(chunk.subarray(i, end));
          hasContent = true;
          i = end - 1;
          continue;
        }
        stretch = Math.min(Math.max(2 * stretch, MIN_STRETCH), MAX_STRETCH);
        runsFrom = end + stretch;
      }
      const c = chunk[i]!;
      if (c === SP || c === HTAB) {
        wsp = true;
        continue;
      }
      if (c === CR) {
        if (i + 1 === n) {
          this.#pendingCr = true; // the next chunk tells whether a LF follows
          break;
        }
        if (chunk[i + 1] === LF) {
          held++;
          wsp = false;
          i++;
          continue;
        }
        // else: a bare CR, content like any other byte
      }
      hasContent = true;
      if (held === 0 && !wsp && o < OUT_SIZE) {
        out[o++] = c;
      } else if (held <= 1 && o + 4 <= OUT_SIZE) {
        if (held === 1) {
          out[o++] = CR;
          out[o++] = LF;
          held = 0;
        }
        if (wsp) {
          out[o++] = SP;
          wsp = false;
        }
        out[o++] = c;
      } else {
        this.#o = o;
        this.#heldCrlfs = held;
        this.#wsp = wsp;
        this.#put(c);
        o = this.#o;
        held = 0;
        wsp = false;
      }
      // The rest of the word: every octet above SP is content, copied as it is.
      while (i + 1 < n && chunk[i + 1]! > SP && o < OUT_SIZE) out[o++] = chunk[++i]!;
    }
    this.#o = o;
    this.#heldCrlfs = held;
    this.#wsp = wsp;
    if (hasContent) this.#hasContent = true;
    this.#flush();
  }

  end(): void {
    if (this.#pendingCr) {
      this.#pendingCr = false;
      this.#put(CR);
    }
    // An empty body stays empty; otherwise exactly one CRLF ends the last line.
    if (this.#hasContent) {
      this.#heldCrlfs = 1;
      this.#wsp = false;
      this.#writeHeld();
    }
    this.#flush();
  }

  #put(c: number): void {
    this.#writeHeld();
    if (this.#wsp) {
      this.#wsp = false;
      this.#byte(SP);
    }
    this.#byte(c);
    this.#hasContent = true;
  }

  #writeHeld(): void {
    for (; this.#heldCrlfs > 0; this.#heldCrlfs--) {
      this.#byte(CR);
      this.#byte(LF);
    }
  }

  #byte(c: number): void {
    if (this.#o === OUT_SIZE) this.#flush();
    OUT[this.#o++] = c;
  }

  #flush(): void {
    if (this.#o === 0) return;
    this.#sink(OUT.subarray(0, this.#o));
    this.#o = 0;
  }
}
