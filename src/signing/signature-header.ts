// The DKIM-Signature field text (RFC 6376 §3.5), folded conservatively.
//
// Folds go only where the grammar plainly allows FWS and where every
// verifier we know copes: between tags after "; ", after a ":" inside h=,
// and inside the base64 of bh= and b=. Never inside a tag name or before
// "=" (some verifiers, Amazon SES among them, fail on that).
//
// b= is the last tag, so the field with an empty b= (what gets signed) is
// exactly the emitted text up to and including "b=": folding decided before
// the signature exists cannot change once it is appended. This is what makes
// "simple" header canonicalization of our own field work.

import { FOLD_AT } from '../message/mime/fold.ts';

export interface SignatureTags {
  algorithm: 'rsa-sha256' | 'ed25519-sha256';
  /** c= value, e.g. "relaxed/relaxed". */
  canonicalization: string;
  domain: string;
  selector: string;
  /** t=, seconds since the epoch. */
  timestamp: number;
  /** x=, seconds since the epoch. */
  expiration?: number;
  /** l=, canonical body octets covered. */
  bodyLength?: number;
  /** h=, already in hash order. */
  headers: string[];
  /** bh=, base64. */
  bodyHash: string;
}

// A relaxed sub-domain list: letters, digits, "-" and "_" (seen in the wild
// in selectors). Anything else could smuggle tags or folds into the field.
const DNS_NAME = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/;

/** Accumulates folded text, tracking the length of the current line. */
class Folder {
  text: string;
  col: number;

  constructor(text: string) {
    this.text = text;
    const nl = text.lastIndexOf('\r\n');
    this.col = nl < 0 ? text.length : text.length - nl - 2;
  }

  /** Appends an unbreakable atom after `sep`, or on a new line if it would not fit. */
  atom(atom: string, sep: ' ' | ''): void {
    if (this.col + sep.length + atom.length <= FOLD_AT || this.col <= 1) {
      this.text += sep + atom;
      this.col += sep.length + atom.length;
    } else {
      this.fold();
      this.text += atom;
      this.col += atom.length;
    }
  }

  /** Appends base64 (plus an optional ";"), breaking at line width; a ";" never starts a line alone. */
  base64(value: string, suffix: '' | ';'): void {
    const body = value.slice(0, -1);
    for (let i = 0; i < body.length;) {
      if (this.col >= FOLD_AT) this.fold();
      const take = Math.min(FOLD_AT - this.col, body.length - i);
      this.text += body.slice(i, i + take);
      this.col += take;
      i += take;
    }
    this.atom(value.slice(-1) + suffix, '');
  }

  /** Starts a tag whose value is base64, where at least one value character still fits after it. */
  base64Tag(name: string): void {
    if (this.col + 1 + name.length + 1 > FOLD_AT) this.fold();
    else {
      this.text += ' ';
      this.col++;
    }
    this.text += name;
    this.col += name.length;
  }

  fold(): void {
    this.text += '\r\n ';
    this.col = 1;
  }
}

/**
 * The field from "DKIM-Signature:" up to and including "b=", without CRLF.
 * This is the text that is canonicalized and signed (with b= empty).
 */
export function signatureFieldPrefix(tags: SignatureTags): string {
  if (!DNS_NAME.test(tags.domain)) throw new Error(`invalid signing domain (d=): ${JSON.stringify(tags.domain)}`);
  if (!DNS_NAME.test(tags.selector)) throw new Error(`invalid selector (s=): ${JSON.stringify(tags.selector)}`);
  if (tags.headers.length === 0) throw new Error('h= must list at least From');

  const f = new Folder('DKIM-Signature:');
  f.atom('v=1;', ' ');
  f.atom(`a=${tags.algorithm};`, ' ');
  f.atom(`c=${tags.canonicalization};`, ' ');
  f.atom(`d=${tags.domain};`, ' ');
  f.atom(`s=${tags.selector};`, ' ');
  f.atom(`t=${tags.timestamp};`, ' ');
  if (tags.expiration !== undefined) f.atom(`x=${tags.expiration};`, ' ');
  if (tags.bodyLength !== undefined) f.atom(`l=${tags.bodyLength};`, ' ');
  tags.headers.forEach((name, i) => {
    const end = i === tags.headers.length - 1 ? ';' : ':';
    if (i === 0) f.atom(`h=${name}${end}`, ' ');
    else f.atom(`${name}${end}`, '');
  });
  // A SHA-256 bh= fits on one line: keep it whole (a tag boundary is the tamest fold).
  const bh = `bh=${tags.bodyHash};`;
  if (1 + bh.length <= FOLD_AT) f.atom(bh, ' ');
  else {
    f.base64Tag('bh=');
    f.base64(tags.bodyHash, ';');
  }
  f.base64Tag('b=');
  return f.text;
}

/** The complete field (no CRLF): the prefix with the base64 signature appended and folded. */
export function completeSignatureField(prefix: string, signature: string): string {
  if (!prefix.endsWith('b=')) throw new Error('signature field prefix must end with "b="');
  const f = new Folder(prefix);
  f.base64(signature, '');
  return f.text;
}
