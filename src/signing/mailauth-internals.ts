// The one place that reaches into mailauth beyond its documented API: its
// DKIM verifier driven with a header block alone (without the byte-by-byte
// stream parser of dkimVerify, which costs as much as the rest), its body
// canonicalization and hashing (the relaxed one finding the lines to rewrite
// without a JavaScript test of every octet, and rewriting them into one
// buffer, see SearchingRelaxedHash; neither keeping a view of a caller's
// buffer), and its DKIM key-record parser, which the self-check uses to stay
// independent of our signer. mailauth has no "exports" map, so these
// modules load, but a release may change them without notice; going through
// this module, such an upgrade breaks here (and in its tests), in one place.
import { createRequire } from 'node:module';
import type { DNSResolver, DKIMVerifyResult } from 'mailauth';

const require = createRequire(import.meta.url);

export interface MailauthBodyHash {
  update(chunk: Buffer): void;
  digest(encoding: 'base64'): string;
}

export interface MailauthPublicKey {
  /** SPKI PEM. */
  publicKey: string;
  keyType: 'rsa' | 'ed25519';
  /** The record as resolved, whitespace removed. */
  rr: string;
}

/** mailauth's relaxed body hasher: the members its update() uses. */
declare class MailauthRelaxedHash implements MailauthBodyHash {
  constructor(algorithm: string, maxBodyLength?: number);
  byteLength: number;
  canonicalizedLength: number;
  bodyHashedBytes: number;
  remainder: Buffer | false;
  update(chunk: Buffer | null, final?: boolean): void;
  digest(encoding: 'base64'): string;
  _pushBodyHash(chunk: Buffer): void;
  _updateBodyHash(chunk: Buffer): void;
  fixLineBuffer(line: Buffer): Buffer;
  getMimeStructureStart(): number;
}
const { RelaxedHash } = require('mailauth/lib/dkim/body/relaxed') as { RelaxedHash: typeof MailauthRelaxedHash };

/** mailauth's simple body hasher: the member that keeps octets for later. */
declare class MailauthSimpleHash implements MailauthBodyHash {
  constructor(algorithm: string, maxBodyLength?: number);
  update(chunk: Buffer): void;
  digest(encoding: 'base64'): string;
  _holdBack(chunk: Buffer, end: number, pairEnd: number): void;
}
const { SimpleHash } = require('mailauth/lib/dkim/body/simple') as { SimpleHash: typeof MailauthSimpleHash };
const { DkimVerifier } = require('mailauth/lib/dkim/dkim-verifier') as {
  DkimVerifier: new (options: { resolver: DNSResolver; minBitLength: number; strict: boolean }) => {
    messageHeaders(headers: unknown): Promise<void>;
    finalChunk(): Promise<void>;
    results: DKIMVerifyResult['results'];
    headerFrom: string[];
    fromFields: number;
  };
};
const tools = require('mailauth/lib/tools') as {
  parseHeaders(header: Buffer): unknown;
  getPublicKey(type: 'DKIM', name: string, minBitLength: number, resolver: DNSResolver, options: { hashAlgo: string }): Promise<MailauthPublicKey>;
};

/** mailauth's body hashers as they ship, to compare ours with. */
export const shippedBodyHashers = { RelaxedHash, SimpleHash };

const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const TAB = 0x09;
const CRLF = Buffer.from('\r\n');

/** The next TAB at or after `from`, or Infinity. */
function nextTab(chunk: Buffer, from: number): number {
  const at = chunk.indexOf(TAB, from);
  return at < 0 ? Infinity : at;
}

/**
 * The next two spaces at or after `from`, or Infinity. A native search for
 * "  " stops at every space of the text and costs about 1 ns an octet. Two
 * spaces in a row after the first space cover an octet at an odd distance
 * from it, so reading every other octet from there finds them. The signer's
 * spaceBeforeSpaceOrCr does the same search; the self-check keeps its own,
 * so that a fault in one cannot vouch for itself.
 */
function nextTwoSpaces(chunk: Buffer, from: number): number {
  const space = chunk.indexOf(SPACE, from);
  if (space < 0) return Infinity;
  for (let i = space + 1; i < chunk.length; i += 2) {
    if (chunk[i] !== SPACE) continue;
    if (chunk[i - 1] === SPACE) return i - 1;
    if (i + 1 < chunk.length && chunk[i + 1] === SPACE) return i;
  }
  return Infinity;
}

/**
 * mailauth's fixLineBuffer, written forwards into `out` at `at`: the line
 * from `start` to `end` of `chunk`, its LF or CRLF ending written as CRLF,
 * WSP runs as one SP and none at the end (RFC 6376 §3.4.4). Returns where
 * the line ends in `out`, which needs room for the line and one octet more
 * (a bare LF becomes CRLF).
 */
function rewriteLine(chunk: Buffer, start: number, end: number, out: Buffer, at: number): number {
  const lineEnd = end > start && chunk[end - 1] === LF;
  if (lineEnd) end -= end - 1 > start && chunk[end - 2] === CR ? 2 : 1;
  let o = at;
  let wsp = false;
  for (let i = start; i < end; i++) {
    const c = chunk[i]!;
    if (c === SPACE || c === TAB) {
      wsp = true;
      continue;
    }
    if (wsp) {
      out[o++] = SPACE;
      wsp = false;
    }
    out[o++] = c;
  }
  if (lineEnd) {
    out[o++] = CR;
    out[o++] = LF;
  }
  return o;
}

/**
 * Lines rewritten by one update() call, hashed together: whole by the time
 * update() returns, so one buffer serves every hasher.
 */
const REWRITTEN = Buffer.allocUnsafe(64 * 1024);
/** Octets hashed as they came that are copied beside rewritten lines rather than hashed on their own. */
const COPY_AT_MOST = 1024;

/**
 * mailauth's RelaxedHash, whose update() is mailauth's step for step but for
 * how it finds the lines that relaxed canonicalization changes (RFC 6376
 * §3.4.4: a line with a TAB, two spaces, a space before its CRLF, or a bare
 * LF) and how it rewrites them. mailauth tests every octet in a JavaScript
 * switch, some 8 ns an octet here (0.8 ms for a 100 KiB body), and rewrites
 * each such line into a buffer of its own, hashed on its own (some 2 µs a
 * line: 6 ms for 100 KiB of format=flowed text). This searches natively for
 * the line ends and TABs, reads every other octet for double spaces (see
 * nextTwoSpaces), and rewrites the lines by
 * fixLineBuffer's rule into one buffer, hashed once per run of them; what is
 * hashed as it came, what is held for the next chunk and where the body ends
 * are the library's, by its own methods. A test compares the two on the same
 * inputs, cut into chunks in every way, and pins the shipped methods by the
 * hash of their source. Unlike mailauth's, it keeps no view of a chunk once
 * update() returns.
 */
class SearchingRelaxedHash extends RelaxedHash {
  /** Octets of REWRITTEN not yet hashed. */
  #rewritten = 0;

  override update(input: Buffer | null, final?: boolean): void {
    this.byteLength += (input && input.length) || 0;
    let chunk = input;
    let lineEndPos = -1;
    let lineNeedsFixing = false;
    let cursorPos = 0;
    if (this.remainder && this.remainder.length) {
      chunk = chunk ? Buffer.concat([this.remainder, chunk]) : this.remainder;
      this.remainder = false;
    }
    if (chunk && chunk.length) {
      // Where the next TAB and the next two spaces are, searched for again only once passed.
      let tab = -1;
      let twoSpaces = -1;
      for (let pos = chunk.indexOf(LF); ; pos = chunk.indexOf(LF, pos + 1)) {
        const lineStart = lineEndPos + 1;
        if (tab < lineStart) tab = nextTab(chunk, lineStart);
        if (twoSpaces < lineStart) twoSpaces = nextTwoSpaces(chunk, lineStart);
        if (pos < 0) {
          // The octets after the last LF: mailauth's loop marks them as it goes, and the final call reads the mark.
          lineNeedsFixing = tab < chunk.length || twoSpaces < chunk.length;
          break;
        }
        lineNeedsFixing = tab < pos || twoSpaces < pos || pos === 0 || chunk[pos - 1] !== CR || (pos >= 2 && chunk[pos - 2] === SPACE);
        if (lineNeedsFixing) {
          if (lineEndPos >= 0 && lineEndPos >= cursorPos) this.#pushAsIs(chunk, cursorPos, lineEndPos + 1);
          this.#rewrite(chunk, lineEndPos + 1, pos + 1);
          lineNeedsFixing = false;
          cursorPos = pos + 1;
        }
        lineEndPos = pos;
      }
    }
    if (chunk && cursorPos < chunk.length && cursorPos !== lineEndPos) {
      if (lineEndPos + 1 > cursorPos) this.#pushAsIs(chunk, cursorPos, lineEndPos + 1);
      cursorPos = lineEndPos + 1;
    }
    this.#flush();
    // A copy of the tail kept for the next chunk (mailauth keeps a view): the caller may reuse its buffer.
    if (chunk && !final && cursorPos < chunk.length) this.remainder = Buffer.from(chunk.subarray(cursorPos));
    if (final) {
      const chunkPart = (cursorPos && chunk && chunk.subarray(cursorPos)) || chunk;
      if (chunkPart && chunkPart.length) {
        this._pushBodyHash(lineNeedsFixing || chunkPart[chunkPart.length - 1] === SPACE ? this.fixLineBuffer(chunkPart) : chunkPart);
      }
      if (this.canonicalizedLength) this._updateBodyHash(CRLF);
    }
  }

  /**
   * Octets hashed as they came, after the rewritten lines before them: a few
   * lines between two rewritten ones join them in REWRITTEN, more are hashed
   * where they are.
   */
  #pushAsIs(chunk: Buffer, start: number, end: number): void {
    if (end - start <= COPY_AT_MOST && this.#rewritten + end - start <= REWRITTEN.length) {
      this.#rewritten += chunk.copy(REWRITTEN, this.#rewritten, start, end);
      return;
    }
    this.#flush();
    this._pushBodyHash(chunk.subarray(start, end));
  }

  /** The line from `start` to `end` of `chunk`, rewritten (no Buffer made for it: one costs more than most lines' work). */
  #rewrite(chunk: Buffer, start: number, end: number): void {
    const room = end - start + 1;
    if (this.#rewritten + room > REWRITTEN.length) this.#flush();
    if (room > REWRITTEN.length) this._pushBodyHash(this.fixLineBuffer(chunk.subarray(start, end)));
    else this.#rewritten = rewriteLine(chunk, start, end, REWRITTEN, this.#rewritten);
  }

  #flush(): void {
    if (this.#rewritten === 0) return;
    const rewritten = REWRITTEN.subarray(0, this.#rewritten);
    this.#rewritten = 0;
    this._pushBodyHash(rewritten);
  }
}

/** mailauth's SimpleHash, holding a copy of the CR and LF octets it keeps at a chunk's end, not a view. */
class CopyingSimpleHash extends SimpleHash {
  override _holdBack(chunk: Buffer, end: number, pairEnd: number): void {
    super._holdBack(Buffer.from(chunk.subarray(end)), 0, pairEnd - end);
  }
}

/**
 * mailauth's body hasher for a c= body canonicalization, limited to l= octets
 * when given. It keeps no view of a chunk once update() returns: the caller
 * may reuse the buffer.
 */
export function mailauthBodyHash(canonicalization: 'relaxed' | 'simple', maxBodyLength?: number): MailauthBodyHash {
  return canonicalization === 'relaxed' ? new SearchingRelaxedHash('sha256', maxBodyLength) : new CopyingSimpleHash('sha256', maxBodyLength);
}

/** mailauth's reading of the DKIM key record at `name`; throws with mailauth's error code when unusable. */
export function mailauthPublicKey(name: string, resolver: DNSResolver, minBitLength: number): Promise<MailauthPublicKey> {
  return tools.getPublicKey('DKIM', name, minBitLength, resolver, { hashAlgo: 'sha256' });
}

/**
 * mailauth's DKIM verification, in its strict mode, of a header block (every field with its CRLF,
 * then the empty line) as the header of a message with an empty body: the
 * results of dkimVerify() for that message, without its stream parser.
 */
export async function mailauthVerifyHeader(
  header: Buffer,
  resolver: DNSResolver,
  minBitLength: number,
): Promise<Pick<DKIMVerifyResult, 'results' | 'headerFrom' | 'fromFields'>> {
  const verifier = new DkimVerifier({ resolver, minBitLength, strict: true });
  await verifier.messageHeaders(tools.parseHeaders(header));
  await verifier.finalChunk();
  return { results: verifier.results, headerFrom: verifier.headerFrom, fromFields: verifier.fromFields };
}
