// Generated From: field values, from a seed: ordinary ones (names, quoted
// strings with escapes, comments, UTF-8, encoded-words, several mailboxes)
// and hostile ones (the shapes that made lenient parsers and readers
// disagree), each maybe mutated a little.
import type { Rng } from '../fuzz/prng.ts';

export type FieldKind = 'ordinary' | 'hostile' | 'mutated';

const DOMAINS = ['example.com', 'scan.example.com', 'EXAMPLE.com', 'mail.example.org', 'bücher.example', 'xn--bcher-kva.example', 'a-b.example.net'];
const ATOMS = ['Anna', 'Schmidt', 'Scanner', "O'Brien", 'a+b', 'x=y', 'Jörg', 'Zoë', '山田', 'Ωμέγα', 'ceo', 'IT', '2nd', 'floor#3', '{ERP}', 'a|b'];
const QUOTED_PIECES = [
  'Scanner',
  ', ',
  '2nd floor',
  ' ',
  '<',
  '>',
  '(',
  ')',
  ':',
  ';',
  '.',
  '\\"',
  '\\\\',
  'Müller',
  '\\x',
  '\t',
  '@',
  'example.com',
  '=?utf-8?q?x?=',
];
const COMMENT_PIECES = ['note', ' ', 'a (nested) one', '\\)', '\\(', 'Zoë', 'x.y', ',', '<', '>', '"'];
const LOCALS = ['p', 'anna.schmidt', 'first.last+tag', "o'hara", 'jörg', 'a_b-c', '"john doe"', '"a\\"b"', '"a,b"', '"x y.z"', 'UPPER'];

export function generateField(rng: Rng): { value: string; kind: FieldKind } {
  const kind = rng.weighted<FieldKind>([
    [5, 'ordinary'],
    [2, 'hostile'],
    [3, 'mutated'],
  ]);
  if (kind === 'ordinary') return { value: ordinary(rng), kind };
  if (kind === 'hostile') return { value: hostile(rng), kind };
  return { value: mutate(rng, rng.chance(0.5) ? ordinary(rng) : hostile(rng)), kind };
}

function ordinary(rng: Rng): string {
  const domain = rng.pick(DOMAINS);
  const count = rng.weighted([
    [8, 1],
    [2, 2],
    [1, 3],
  ]);
  const list: string[] = [];
  for (let i = 0; i < count; i++) list.push(mailbox(rng, rng.chance(0.9) ? domain : rng.pick(DOMAINS)));
  return list.join(rng.pick([', ', ',', ' , ', ',\t']));
}

function mailbox(rng: Rng, domain: string): string {
  const address = `${rng.pick(LOCALS)}@${domain}`;
  const cfws = () => (rng.chance(0.2) ? ` ${comment(rng)} ` : rng.pick(['', ' ', '  ']));
  if (rng.chance(0.25)) return `${cfws()}${address}${cfws()}`;
  const inner = rng.chance(0.1) ? ` ${address} ` : address;
  const name = rng.chance(0.15) ? '' : displayName(rng);
  return `${name}${name && rng.chance(0.9) ? ' ' : ''}<${inner}>${cfws()}`;
}

function displayName(rng: Rng): string {
  const words: string[] = [];
  const n = rng.range(1, 4);
  for (let i = 0; i < n; i++) {
    words.push(
      rng.weighted<() => string>([
        [5, () => rng.pick(ATOMS)],
        [3, () => quoted(rng)],
        [2, () => encodedWord(rng, rng.pick(['Jörg Müller', 'Scanner', 'a_b', 'x y', `ceo@${rng.pick(DOMAINS)}`, 'Zoë <z>']))],
        [1, () => comment(rng)],
        [1, () => 'Q.'],
      ])(),
    );
  }
  return words.join(rng.pick([' ', ' ', '  ', '\t']));
}

function quoted(rng: Rng): string {
  let s = '';
  for (let i = rng.range(0, 4); i > 0; i--) s += rng.pick(QUOTED_PIECES);
  return `"${s}"`;
}

function comment(rng: Rng): string {
  let s = '';
  for (let i = rng.range(0, 3); i > 0; i--) s += rng.pick(COMMENT_PIECES);
  return `(${s})`;
}

function encodedWord(rng: Rng, text: string): string {
  const bytes = Buffer.from(text, 'utf8');
  if (rng.chance(0.5)) return `=?utf-8?b?${bytes.toString('base64')}?=`;
  const q = [...bytes]
    .map((b) => (b === 0x20 ? '_' : /[A-Za-z0-9]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `=${b.toString(16).toUpperCase().padStart(2, '0')}`))
    .join('');
  return `=?${rng.pick(['utf-8', 'UTF-8'])}?${rng.pick(['q', 'Q'])}?${q}?=`;
}

/** The shapes a lenient parser and a reader read differently. */
export function hostile(rng: Rng): string {
  const shown = `${rng.pick(['ceo', 'boss', 'a.b'])}@${rng.pick(['example.com', 'EXAMPLE.COM', 'bank.example'])}`;
  const real = `${rng.pick(['p', 'scan'])}@scan.example.com`;
  return rng.pick([
    `${shown} <${real}>`,
    `${shown} <${real}`,
    `${shown}>${real}`,
    `${shown} <${real}>, x`,
    `${shown}\x00<${real}>`,
    `${shown}\x00${real}`,
    `"${shown}" <${real}>`,
    `${encodedWord(rng, shown)} <${real}>`,
    `${real} (${shown})`,
    `${rng.pick(ATOMS)} <${real}> ${shown}`,
    `<${real}> <${shown}>`,
    `${rng.pick(ATOMS)}: ${real};`,
    `<@route.example:${real}>`,
    `${real},`,
    `${real}, ${rng.pick(ATOMS)}`,
    `"${rng.pick(ATOMS)} <${real}>`,
    `${rng.pick(ATOMS)} (${shown} <${real}>`,
    `"${shown}"@scan.example.com`,
    `${rng.pick(ATOMS)} <${real}>)`,
    `${shown.replace('@', '＠')} <${real}>`,
  ]);
}

const INSERTS = ['<', '>', '"', '(', ')', '\\', ',', ';', ':', '@', '.', ' ', '\t', '\x00', '\x7f', '\u202e', '[', ']', '=?', '?=', 'x'];

/** One to three small edits: insert a special, delete, or repeat a piece. */
function mutate(rng: Rng, value: string): string {
  let chars = [...value];
  for (let edits = rng.range(1, 3); edits > 0; edits--) {
    const at = rng.int(chars.length + 1);
    const edit = rng.int(3);
    if (edit === 0) chars.splice(at, 0, ...rng.pick(INSERTS));
    else if (edit === 1) chars.splice(at, rng.range(1, 3));
    else chars = [...chars.slice(0, at), ...chars.slice(Math.max(0, at - rng.range(1, 8)), at), ...chars.slice(at)];
  }
  return chars.join('');
}
