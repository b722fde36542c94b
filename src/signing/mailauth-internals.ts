// The one place that reaches into mailauth beyond its documented API: its
// DKIM verifier driven with a header block alone (without the byte-by-byte
// stream parser of dkimVerify, which costs as much as the rest), its body
// canonicalization and hashing (the relaxed one finding the lines to rewrite
// with native searches, see SearchingRelaxedHash; neither keeping a view of a
// caller's buffer), and its DKIM key-record parser, which the self-check uses
// to stay independent of our signer. mailauth has no "exports" map, so these
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
const TWO_SPACES = Buffer.from('  ');
const CRLF = Buffer.from('\r\n');

/** The next position of `needle` at or after `from`, or Infinity. */
function next(chunk: Buffer, needle: number | Buffer, from: number): number {
  const at = chunk.indexOf(needle, from);
  return at < 0 ? Infinity : at;
}

/**
 * mailauth's RelaxedHash, whose update() is mailauth's step for step but for
 * how it finds the lines that relaxed canonicalization changes (RFC 6376
 * §3.4.4: a line with a TAB, two spaces, a space before its CRLF, or a bare
 * LF). mailauth tests every octet in a JavaScript switch, some 8 ns an octet
 * here (0.8 ms for a 100 KiB body); this searches natively for the line ends,
 * TABs and double spaces. The lines rewritten, what is hashed as it came and
 * what is held for the next chunk are the library's, by its own methods; a
 * test compares the two on the same inputs, cut into chunks in every way, and
 * pins the shipped update() by the hash of its source. Unlike mailauth's, it
 * keeps no view of a chunk once update() returns.
 */
class SearchingRelaxedHash extends RelaxedHash {
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
        if (tab < lineStart) tab = next(chunk, TAB, lineStart);
        if (twoSpaces < lineStart) twoSpaces = next(chunk, TWO_SPACES, lineStart);
        if (pos < 0) {
          // The octets after the last LF: mailauth's loop marks them as it goes, and the final call reads the mark.
          lineNeedsFixing = tab < chunk.length || twoSpaces < chunk.length;
          break;
        }
        lineNeedsFixing = tab < pos || twoSpaces < pos || pos === 0 || chunk[pos - 1] !== CR || (pos >= 2 && chunk[pos - 2] === SPACE);
        if (lineNeedsFixing) {
          if (lineEndPos >= 0 && lineEndPos >= cursorPos) this._pushBodyHash(chunk.subarray(cursorPos, lineEndPos + 1));
          this._pushBodyHash(this.fixLineBuffer(chunk.subarray(lineEndPos + 1, pos + 1)));
          lineNeedsFixing = false;
          cursorPos = pos + 1;
        }
        lineEndPos = pos;
      }
    }
    if (chunk && cursorPos < chunk.length && cursorPos !== lineEndPos) {
      const chunkPart = chunk.subarray(cursorPos, lineEndPos + 1);
      if (chunkPart.length) this._pushBodyHash(chunkPart);
      cursorPos = lineEndPos + 1;
    }
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
