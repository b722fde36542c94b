// Zone-file text, as `dkim-relay keys dns --format zone` prints it, turned
// into the table of the loopback DNS server (dns-server.ts): each TXT record
// keeps the character-strings exactly as they were quoted, so a test serves
// what an administrator would have pasted into a zone.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TxtTable } from './dns-server.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const NODE = join(ROOT, 'node_modules', '.bin', 'node');
const CLI = join(ROOT, 'bin', 'dkim-relay.js');

export class ZoneSyntaxError extends Error {}

type Token = { kind: 'word'; text: string } | { kind: 'string'; text: string } | { kind: 'eol' };

/**
 * Parses the subset of RFC 1035 master-file syntax the CLI prints:
 * `; comments`, `name. [ttl] [IN] TXT ( "a" "b" … )` spread over lines by
 * parentheses, quoted strings with \" \\ and \DDD escapes. Names must be
 * absolute (end in a dot); they are stored lower-case without the dot.
 * Several records at one name become several entries.
 */
export function parseZone(text: string, into: TxtTable = new Map()): TxtTable {
  let record: Token[] = [];
  for (const token of tokenize(text)) {
    if (token.kind === 'eol') {
      if (record.length > 0) addRecord(record, into);
      record = [];
    } else {
      record.push(token);
    }
  }
  if (record.length > 0) addRecord(record, into);
  return into;
}

function addRecord(tokens: Token[], into: TxtTable): void {
  const [owner, ...rest] = tokens;
  if (!owner || owner.kind !== 'word') throw new ZoneSyntaxError(`a record must start with its name: ${JSON.stringify(tokens)}`);
  if (!owner.text.endsWith('.')) throw new ZoneSyntaxError(`relative owner name ${owner.text}: the CLI prints absolute names`);
  let at = 0;
  const word = (t: Token | undefined): string | undefined => (t?.kind === 'word' ? t.text : undefined);
  if (/^\d+$/.test(word(rest[at]) ?? '')) at++;
  if (word(rest[at])?.toUpperCase() === 'IN') at++;
  if (word(rest[at])?.toUpperCase() !== 'TXT') throw new ZoneSyntaxError(`${owner.text}: expected TXT, got ${JSON.stringify(rest[at])}`);
  at++;
  const strings = rest.slice(at).map((t) => {
    if (t.kind !== 'string') throw new ZoneSyntaxError(`${owner.text}: TXT data must be quoted strings, got ${JSON.stringify(t)}`);
    if (Buffer.byteLength(t.text, 'latin1') > 255) throw new ZoneSyntaxError(`${owner.text}: a character-string over 255 octets`);
    return t.text;
  });
  if (strings.length === 0) throw new ZoneSyntaxError(`${owner.text}: TXT record without strings`);
  const name = owner.text.slice(0, -1).toLowerCase();
  into.set(name, [...(into.get(name) ?? []), strings]);
}

function* tokenize(text: string): Generator<Token> {
  let depth = 0;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '\n') {
      if (depth === 0) yield { kind: 'eol' };
      i++;
    } else if (c === ' ' || c === '\t' || c === '\r') {
      i++;
    } else if (c === ';') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c === '(') {
      depth++;
      i++;
    } else if (c === ')') {
      if (depth === 0) throw new ZoneSyntaxError('unbalanced ")"');
      depth--;
      i++;
    } else if (c === '"') {
      let s = '';
      i++;
      for (;;) {
        if (i >= text.length) throw new ZoneSyntaxError('unterminated quoted string');
        const d = text[i]!;
        if (d === '"') break;
        if (d === '\\') {
          const digits = /^\d{3}/.exec(text.slice(i + 1, i + 4));
          if (digits) {
            s += String.fromCharCode(Number(digits[0]));
            i += 4;
          } else {
            s += text[i + 1] ?? '';
            i += 2;
          }
          continue;
        }
        s += d;
        i++;
      }
      i++;
      yield { kind: 'string', text: s };
    } else {
      let w = '';
      while (i < text.length && !/[\s;()"]/.test(text[i]!)) w += text[i++];
      yield { kind: 'word', text: w };
    }
  }
  if (depth !== 0) throw new ZoneSyntaxError('unbalanced "("');
  yield { kind: 'eol' };
}

/** Runs the real CLI, `dkim-relay keys dns --format zone`, on the key store in `keysDir`. */
export async function printZone(keysDir: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'dkim-zone-'));
  try {
    const config = join(dir, 'dkim-relay.yaml');
    await writeFile(config, `keys:\n  dir: ${JSON.stringify(keysDir)}\n`);
    return await new Promise<string>((resolve, reject) => {
      execFile(NODE, [CLI, 'keys', 'dns', '--format', 'zone', '--config', config], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`keys dns failed: ${err.message}\n${stderr}`));
        else resolve(stdout);
      });
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The zone the CLI prints for `keysDir`, parsed into a DNS server table (added to `into`). */
export async function zoneTable(keysDir: string, into: TxtTable = new Map()): Promise<TxtTable> {
  return parseZone(await printZone(keysDir), into);
}
