// Every regular expression written in a source file: /literals/ and
// RegExp(...) built from string literals. Types are stripped first with
// Node's own TypeScript eraser (which keeps every offset, so line numbers stay
// true); the JavaScript left is then tokenized here. No JavaScript parser is
// among the dependencies (the TypeScript compiler in use is a native binary
// without a JavaScript API), and a tokenizer is all that is needed: the one
// hard question, whether a "/" starts a regular expression or divides, is
// answered by the token before it, as the ECMAScript grammar's
// InputElementRegExp goal does for the code this project writes.
import { stripTypeScriptTypes } from 'node:module';

export interface FoundRegex {
  line: number;
  source: string;
  flags: string;
}

export interface Unresolved {
  line: number;
  text: string;
}

type Token =
  | { kind: 'string'; value: string; text: string; start: number }
  | { kind: 'template'; text: string; start: number; names: string[] }
  | { kind: 'regex'; source: string; flags: string; start: number }
  | { kind: 'word'; text: string; start: number }
  | { kind: 'number'; start: number }
  | { kind: 'punct'; text: string; start: number };

// After these words an expression starts, so "/" opens a regular expression.
const KEYWORDS_BEFORE_EXPRESSION = new Set([
  'return',
  'typeof',
  'instanceof',
  'in',
  'of',
  'new',
  'delete',
  'void',
  'throw',
  'case',
  'do',
  'else',
  'yield',
  'await',
]);

function regexAllowedAfter(previous: Token | undefined): boolean {
  if (!previous) return true;
  switch (previous.kind) {
    case 'punct':
      return ![')', ']', '}'].includes(previous.text);
    case 'word':
      return KEYWORDS_BEFORE_EXPRESSION.has(previous.text);
    default:
      return false;
  }
}

function isIdentifierChar(c: string): boolean {
  return /[\p{ID_Continue}$\u200c\u200d]/u.test(c);
}

function evaluateString(text: string): string {
  return new Function(`return ${text};`)() as string;
}

class Scanner {
  private at = 0;
  readonly tokens: Token[] = [];
  private readonly code: string;

  constructor(code: string) {
    this.code = code;
  }

  run(): Token[] {
    if (this.code.startsWith('#!')) this.at = this.code.indexOf('\n') + 1;
    this.scan(false);
    return this.tokens;
  }

  /** Scans until the end, or (inside a template substitution) to its closing "}". */
  private scan(inSubstitution: boolean): void {
    const code = this.code;
    let braces = 0;
    while (this.at < code.length) {
      const c = code[this.at]!;
      const start = this.at;
      if (/\s/.test(c)) {
        this.at++;
      } else if (code.startsWith('//', this.at)) {
        const end = code.indexOf('\n', this.at);
        this.at = end < 0 ? code.length : end;
      } else if (code.startsWith('/*', this.at)) {
        const end = code.indexOf('*/', this.at + 2);
        if (end < 0) throw new Error(`unclosed comment at offset ${start}`);
        this.at = end + 2;
      } else if (c === '"' || c === "'") {
        this.at = this.skipQuoted(c, this.at + 1);
        const text = code.slice(start, this.at);
        this.tokens.push({ kind: 'string', text, value: evaluateString(text), start });
      } else if (c === '`') {
        this.tokens.push(this.template());
      } else if (c === '/' && regexAllowedAfter(this.tokens.at(-1))) {
        this.tokens.push(this.regex());
      } else if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(code[this.at + 1] ?? ''))) {
        while (this.at < code.length && /[0-9A-Za-z_.]/.test(code[this.at]!)) this.at++;
        this.tokens.push({ kind: 'number', start });
      } else if (isIdentifierChar(c) || c === '#') {
        this.at++;
        while (this.at < code.length && isIdentifierChar(code[this.at]!)) this.at++;
        this.tokens.push({ kind: 'word', text: code.slice(start, this.at), start });
      } else {
        if (c === '{') braces++;
        if (c === '}') {
          if (inSubstitution && braces === 0) {
            this.at++;
            return;
          }
          braces--;
        }
        // Punctuators are kept one character at a time: only the last one matters.
        this.at++;
        this.tokens.push({ kind: 'punct', text: c, start });
      }
    }
    if (inSubstitution) throw new Error('unclosed template substitution');
  }

  private skipQuoted(quote: string, from: number): number {
    let at = from;
    while (at < this.code.length) {
      const c = this.code[at]!;
      if (c === '\\') at += 2;
      else if (c === quote) return at + 1;
      else if (c === '\n') break;
      else at++;
    }
    throw new Error(`unclosed string at offset ${from - 1}`);
  }

  private template(): Token {
    const start = this.at;
    const names: string[] = [];
    this.at++;
    while (this.at < this.code.length) {
      const c = this.code[this.at]!;
      if (c === '\\') {
        this.at += 2;
      } else if (c === '`') {
        this.at++;
        return { kind: 'template', text: this.code.slice(start, this.at), start, names };
      } else if (c === '$' && this.code[this.at + 1] === '{') {
        this.at += 2;
        const before = this.tokens.length;
        this.scan(true);
        const inner = this.tokens.splice(before);
        const only = inner.length === 1 ? inner[0] : undefined;
        names.push(only?.kind === 'word' ? only.text : '');
      } else {
        this.at++;
      }
    }
    throw new Error(`unclosed template at offset ${start}`);
  }

  private regex(): Token {
    const start = this.at;
    let at = this.at + 1;
    let inClass = false;
    for (;;) {
      const c = this.code[at];
      if (c === undefined || c === '\n') throw new Error(`unclosed regular expression at offset ${start}`);
      if (c === '\\') at += 2;
      else {
        if (c === '[') inClass = true;
        else if (c === ']') inClass = false;
        else if (c === '/' && !inClass) break;
        at++;
      }
    }
    const source = this.code.slice(start + 1, at);
    at++;
    const flagsStart = at;
    while (at < this.code.length && /[a-z]/.test(this.code[at]!)) at++;
    this.at = at;
    return { kind: 'regex', source, flags: this.code.slice(flagsStart, at), start };
  }
}

function lineOf(code: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset; i++) if (code.charCodeAt(i) === 10) line++;
  return line;
}

/** Values of `const NAME = 'literal'` in the file, for RegExp(`...${NAME}...`). */
function constantStrings(tokens: Token[]): Map<string, string> {
  const constants = new Map<string, string>();
  for (let i = 0; i + 3 < tokens.length; i++) {
    const [keyword, name, equals, value] = tokens.slice(i, i + 4);
    if (keyword?.kind === 'word' && keyword.text === 'const' && name?.kind === 'word' && equals?.kind === 'punct' && equals.text === '=') {
      const next = tokens[i + 4];
      const ends = !next || (next.kind === 'punct' && (next.text === ';' || next.text === ','));
      if (value?.kind === 'string' && ends) constants.set(name.text, value.value);
    }
  }
  return constants;
}

/** The regular expressions in one TypeScript source text. */
export function regexesIn(typescript: string): { found: FoundRegex[]; unresolved: Unresolved[] } {
  const code = stripTypeScriptTypes(typescript, { mode: 'strip' });
  const tokens = new Scanner(code).run();
  const constants = constantStrings(tokens);
  const found: FoundRegex[] = [];
  const unresolved: Unresolved[] = [];
  tokens.forEach((token, i) => {
    if (token.kind === 'regex') {
      found.push({ line: lineOf(code, token.start), source: token.source, flags: token.flags });
      return;
    }
    if (token.kind !== 'word' || token.text !== 'RegExp') return;
    const open = tokens[i + 1];
    if (open?.kind !== 'punct' || open.text !== '(') return;
    const line = lineOf(code, token.start);
    const pattern = tokens[i + 2];
    const after = tokens[i + 3];
    const flagsToken = after?.kind === 'punct' && after.text === ',' ? tokens[i + 4] : undefined;
    let source: string | undefined;
    if (pattern?.kind === 'string') source = pattern.value;
    if (pattern?.kind === 'template' && pattern.names.every((name) => constants.has(name))) {
      source = new Function(...pattern.names, `return ${pattern.text};`)(...pattern.names.map((name) => constants.get(name))) as string;
    }
    const flags = flagsToken === undefined ? '' : flagsToken.kind === 'string' ? flagsToken.value : undefined;
    if (source === undefined || flags === undefined) {
      unresolved.push({ line, text: code.slice(token.start, (tokens[i + 5] ?? token).start) });
    } else {
      found.push({ line, source, flags });
    }
  });
  return { found, unresolved };
}
