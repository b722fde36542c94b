// The RFC 5322 §3.4 mailbox-list of a From: (or the mailbox of a Sender:),
// parsed strictly: whatever this accepts, every conforming parser reads the
// same addresses from. Lenient parsers guess at broken input, and their
// guesses differ from a mail reader's; so anything a guess would be needed
// for is refused, with the reason.
//
// Accepted: name-addr and addr-spec (§3.4), CFWS and nested comments (§3.2.2),
// quoted strings (§3.2.4), UTF-8 in atoms, quoted strings and comments
// (RFC 6532 §3.2), and of the obsolete forms only "." in a display name
// (obs-phrase, §4.1: "John Q. Public"). Refused: groups, source routes,
// domain literals, empty list entries, CFWS inside an addr-spec, and
// control characters anywhere.

import { LOOK_ALIKE_DOT } from './display-address.ts';

export interface Mailbox {
  /** The display name's words, single spaces where CFWS was; quotes and quoted-pairs undone, encoded-words left as written. */
  displayName: string;
  /** The local part's value: quotes and quoted-pairs undone. */
  localPart: string;
  /** The domain as written (RFC 6532: it may be UTF-8). */
  domain: string;
  /** local-part@domain exactly as written. */
  address: string;
}

export type MailboxList = { ok: true; mailboxes: Mailbox[]; comments: string[] } | { ok: false; problem: string };

class Refusal extends Error {}

/** Parses an unfolded field value (a JS string, already decoded from UTF-8). */
export function parseMailboxList(value: string): MailboxList {
  const control = /[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/.exec(value);
  if (control) {
    const code = control[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0');
    // A reader may stop at a NUL, or reorder text around a bidi control: it would not show what is signed.
    return { ok: false, problem: `a control character (U+${code}) at ${snippet(value, control.index)}` };
  }
  const straddling = straddlingEncodedWord(value);
  if (straddling !== null) {
    return { ok: false, problem: `an encoded-word that spans spaces or specials: ${snippet(value, straddling)} (RFC 2047: an encoded-word is one whole word)` };
  }
  try {
    const parser = new Parser(value);
    return { ok: true, mailboxes: parser.list(), comments: parser.comments };
  } catch (err) {
    if (err instanceof Refusal) return { ok: false, problem: err.message };
    throw err;
  }
}

/**
 * Where an RFC 2047 encoded-word (=?charset?X?text?=) holds a space or a
 * special, or null. Python's email package and some readers decode such a
 * span as one word, taking the "<", "@" or "," inside it for text; a
 * grammar that stops at the special reads addresses out of the middle.
 */
function straddlingEncodedWord(value: string): number | null {
  for (let at = value.indexOf('=?'); at >= 0;) {
    const charsetEnd = value.indexOf('?', at + 2);
    const encodingEnd = charsetEnd < 0 ? -1 : value.indexOf('?', charsetEnd + 1);
    const end = encodingEnd < 0 ? -1 : value.indexOf('?=', encodingEnd + 1);
    if (end < 0) return null;
    if (/[\s"<>(),;:@\\[\]]/.test(value.slice(at, end + 2))) return at;
    // Spans never overlap, so the scan stays linear.
    at = value.indexOf('=?', end + 2);
  }
  return null;
}

/** atext (RFC 5322 §3.2.3) with UTF8-non-ascii (RFC 6532 §3.2); controls are refused before parsing. */
function isAtext(c: string): boolean {
  if (c === '') return false;
  const code = c.charCodeAt(0);
  if (code >= 0x80) return true;
  return /[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]/.test(c);
}

class Parser {
  private pos = 0;
  readonly comments: string[] = [];
  private readonly text: string;

  constructor(text: string) {
    this.text = text;
  }

  list(): Mailbox[] {
    this.skipCFWS();
    const mailboxes: Mailbox[] = [];
    if (this.peek() === '') return mailboxes;
    for (;;) {
      const mailbox = this.mailbox();
      mailboxes.push(mailbox);
      const c = this.peek();
      if (c === '') return mailboxes;
      if (c === ',') {
        this.pos++;
        continue;
      }
      if (c === '>') this.refuse(`a ">" with no "<" before it, after ${quote(mailbox.address)}`);
      if (c === ')') this.refuse(`a ")" with no "(" before it, after ${quote(mailbox.address)}`);
      if (c === ':' || c === ';') this.refuse('a group ("name: ...;") is not allowed here');
      this.refuse(`text after the address ${quote(mailbox.address)}: ${snippet(this.text, this.pos)}`);
    }
  }

  /** mailbox = name-addr / addr-spec, with the CFWS around it. */
  private mailbox(): Mailbox {
    const start = this.pos;
    const comments = this.comments.length;
    const displayName = this.phrase();
    if (this.peek() === '<') return { displayName, ...this.angleAddr() };
    if (this.peek() === ':') this.refuse('a group ("name: ...;") is not allowed here');
    // Not name-addr: read the same text again as an addr-spec.
    this.pos = start;
    this.comments.length = comments;
    this.skipCFWS();
    if (this.peek() === ',' || this.peek() === '') this.refuse('an empty entry in the address list');
    const spec = this.addrSpec();
    this.skipCFWS();
    return { displayName: '', ...spec };
  }

  /** display-name = phrase = 1*word / obs-phrase, may be empty here: the words as shown, joined as written. */
  private phrase(): string {
    let name = '';
    for (;;) {
      const before = this.pos;
      this.skipCFWS();
      const space = this.pos > before && name !== '' ? ' ' : '';
      const c = this.peek();
      if (c === '"') name += space + this.quotedString();
      else if (isAtext(c)) name += space + this.atom();
      else if (c === '.' && name !== '') {
        name += space + this.text[this.pos++];
        // Python's email package, for one, fails on an obsolete "." glued to the "<".
        if (this.peek() === '<') this.refuse(`a "." right before "<" in the display name ${quote(name)} (quote the name)`);
      } else return name;
    }
  }

  /** angle-addr = [CFWS] "<" addr-spec ">" [CFWS]; obs-route is refused. */
  private angleAddr(): Omit<Mailbox, 'displayName'> {
    const open = this.pos++;
    this.skipCFWS();
    if (this.peek() === '@') this.refuse(`a source route or empty local part in ${snippet(this.text, open)}`);
    if (this.peek() === '>') this.refuse('an empty address "<>"');
    const spec = this.addrSpec();
    this.skipCFWS();
    if (this.peek() === '') this.refuse(`a "<" that is never closed: ${snippet(this.text, open)}`);
    if (this.peek() !== '>') this.refuse(`text after the address ${quote(spec.address)} inside "<...>": ${snippet(this.text, this.pos)}`);
    this.pos++;
    this.skipCFWS();
    return spec;
  }

  /** addr-spec = local-part "@" domain, with no CFWS inside (stricter than §3.4.1, as readers differ there). */
  private addrSpec(): Omit<Mailbox, 'displayName'> {
    const start = this.pos;
    let localPart: string;
    if (this.peek() === '"') {
      localPart = this.quotedString();
      // "ceo@example.com"@other.example is legal, but shows as an address of another domain.
      if (/[@<>]/.test(localPart)) this.refuse(`a quoted local part holding "@", "<" or ">": ${snippet(this.text, start)}`);
    } else {
      localPart = this.dotAtomText('local part');
    }
    if (this.peek() !== '@') {
      this.refuse(`${snippet(this.text, start)} is not an address (write local@domain or Name <local@domain>)`);
    }
    this.pos++;
    if (this.peek() === '[') this.refuse(`a domain literal names no domain to sign for: ${snippet(this.text, this.pos)}`);
    const domain = this.dotAtomText('domain');
    // search() ignores the pattern's g flag and lastIndex.
    const lookAlike = domain.search(LOOK_ALIKE_DOT);
    if (lookAlike >= 0) {
      const code = domain.codePointAt(lookAlike)!.toString(16).toUpperCase().padStart(4, '0');
      this.refuse(`a character that looks like "." (U+${code}) in the domain ${quote(domain.slice(0, 60))}; write the domain with "."`);
    }
    return { localPart, domain, address: this.text.slice(start, this.pos) };
  }

  /** dot-atom-text = 1*atext *("." 1*atext) */
  private dotAtomText(what: string): string {
    const start = this.pos;
    for (;;) {
      if (this.atom() === '') {
        const at = this.pos === start ? `no ${what}` : `an empty label in the ${what}`;
        this.refuse(`${at} at ${snippet(this.text, start)}`);
      }
      if (this.peek() !== '.') return this.text.slice(start, this.pos);
      this.pos++;
    }
  }

  private atom(): string {
    const start = this.pos;
    while (isAtext(this.peek())) this.pos++;
    return this.text.slice(start, this.pos);
  }

  /** quoted-string (§3.2.4): the value, quotes and quoted-pairs undone. */
  private quotedString(): string {
    const open = this.pos++;
    let value = '';
    for (;;) {
      const c = this.text[this.pos++];
      if (c === undefined) this.refuse(`a '"' that is never closed: ${snippet(this.text, open)}`);
      if (c === '"') return value;
      if (c === '\\') {
        const next = this.text[this.pos++];
        if (next === undefined) this.refuse(`a '"' that is never closed: ${snippet(this.text, open)}`);
        value += next;
      } else value += c;
    }
  }

  /** CFWS (§3.2.2): whitespace and comments, the comments' text kept for the caller. */
  private skipCFWS(): void {
    for (;;) {
      const c = this.peek();
      if (c === ' ' || c === '\t') this.pos++;
      else if (c === '(') this.comments.push(this.comment());
      else return;
    }
  }

  /**
   * A comment, nested ones included; iterative, so deep nesting costs no
   * stack. Its text is gathered a run at a time (slices between the
   * characters that change it), not a character at a time.
   */
  private comment(): string {
    const open = this.pos;
    const unclosed = (): never => this.refuse(`a "(" that is never closed: ${snippet(this.text, open)}`);
    let depth = 0;
    let text = '';
    let run = this.pos;
    for (;;) {
      const c = this.text[this.pos];
      if (c === undefined) unclosed();
      if (c === '\\') {
        text += this.text.slice(run, this.pos);
        if (this.pos + 1 >= this.text.length) unclosed();
        run = this.pos + 1; // the quoted character starts the next run
        this.pos += 2;
        continue;
      }
      if (c === '(' && ++depth === 1) {
        run = ++this.pos;
        continue;
      }
      if (c === ')' && --depth === 0) return text + this.text.slice(run, this.pos++);
      this.pos++;
    }
  }

  private peek(): string {
    return this.text[this.pos] ?? '';
  }

  private refuse(reason: string): never {
    throw new Refusal(reason);
  }
}

/** A piece of the field for an error message: printable ASCII, others as \u{…}, at most 40 characters. */
function snippet(text: string, at: number): string {
  const piece = text.slice(at, at + 40);
  return quote(piece) + (text.length > at + 40 ? '...' : '');
}

function quote(text: string): string {
  return `"${text.replace(/[^\x20-\x7e]|["\\]/gu, (c) => (c === '"' || c === '\\' ? `\\${c}` : `\\u{${c.codePointAt(0)!.toString(16)}}`))}"`;
}
