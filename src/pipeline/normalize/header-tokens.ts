// A lexer for structured header values (RFC 5322 §3.2): enough to tell a
// display name from an address and a comment from a parameter. It works on the
// raw, still folded value and reports positions, so an edit can replace one
// token and leave every other octet as it was. Each octet is visited once,
// and the tokens come one at a time: a caller keeps only what it needs, so
// a hostile field of a million tokens does not become an array of them.

export type TokenKind = 'atom' | 'quoted' | 'comment' | 'angle' | 'literal' | 'special';

export interface Token {
  kind: TokenKind;
  /** [start, end) in the value. */
  start: number;
  end: number;
}

const SPECIALS = ',;:@.<>=/?';
const isSpace = (c: string): boolean => c === ' ' || c === '\t' || c === '\r' || c === '\n';
const ATOM_STOP = new Set([...SPECIALS, '(', ')', '"', '[', ']', '\\', ' ', '\t', '\r', '\n']);

export function* tokenize(value: string): Generator<Token> {
  const n = value.length;
  let i = 0;
  while (i < n) {
    const c = value[i]!;
    const start = i;
    if (isSpace(c)) {
      i++;
      continue;
    }
    if (c === '(') {
      let depth = 0;
      for (; i < n; i++) {
        const d = value[i];
        if (d === '\\') i++;
        else if (d === '(') depth++;
        else if (d === ')' && --depth === 0) break;
      }
      i = Math.min(i + 1, n);
      yield { kind: 'comment', start, end: i };
    } else if (c === '"' || c === '[') {
      const close = c === '"' ? '"' : ']';
      for (i++; i < n && value[i] !== close; i++) if (value[i] === '\\') i++;
      i = Math.min(i + 1, n);
      yield { kind: c === '"' ? 'quoted' : 'literal', start, end: i };
    } else if (c === '<') {
      // an angle-addr may hold a quoted local part with ">" in it
      let quoted = false;
      for (i++; i < n; i++) {
        const d = value[i];
        if (d === '\\') i++;
        else if (d === '"') quoted = !quoted;
        else if (d === '>' && !quoted) break;
      }
      i = Math.min(i + 1, n);
      yield { kind: 'angle', start, end: i };
    } else if (SPECIALS.includes(c) || c === ')' || c === ']' || c === '\\') {
      i++;
      yield { kind: 'special', start, end: i };
    } else {
      while (i < n && !ATOM_STOP.has(value[i]!)) i++;
      yield { kind: 'atom', start, end: i };
    }
  }
}

/** The text a word stands for: a quoted-string without its quotes and escapes. */
export function wordText(value: string, token: Token): string {
  const raw = value.slice(token.start, token.end);
  if (token.kind !== 'quoted') return raw;
  const inner = raw.endsWith('"') && raw.length > 1 ? raw.slice(1, -1) : raw.slice(1);
  return inner.replace(/\r\n/g, '').replace(/\\(.)/gs, '$1');
}

export const has8bitText = (s: string): boolean => /[\x80-\xff]/.test(s);
