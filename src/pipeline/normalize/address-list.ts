// An address-list header value (RFC 5322 §3.4) cut into its mailboxes and
// groups. Each mailbox keeps its own text (display name, comments, encoded
// words, 8-bit octets) as written; only folding whitespace is unfolded.
// Lenient on purpose, unlike message/mailbox-list.ts (which decides whose
// domain a From: names and so refuses anything readers disagree on): this
// one only has to find the same address written twice, and must leave every
// mailbox it does not drop exactly as the sender wrote it.

import { tokenize, type Token } from './header-tokens.ts';

export interface WrittenMailbox {
  kind: 'mailbox';
  /** As written, unfolded and trimmed. */
  text: string;
  /** The addr-spec, lower-cased: two mailboxes with the same key are the same address. */
  key: string;
}

export interface WrittenGroup {
  kind: 'group';
  /** The display name before the colon, unfolded and trimmed. */
  name: string;
  members: WrittenMailbox[];
}

export type AddressItem = WrittenMailbox | WrittenGroup;

const CLOSERS: Partial<Record<Token['kind'], string>> = { quoted: '"', comment: ')', angle: '>', literal: ']' };
const unfold = (text: string): string => text.replace(/\r\n/g, '').trim();

/** The items of the list in order, or a reason when the value is not one. */
export function parseAddressList(value: string): AddressItem[] | string {
  const items: AddressItem[] = [];
  let group: WrittenGroup | null = null;
  let current: Token[] = [];
  const endMailbox = (): void => {
    if (current.length === 0) return; // empty list elements are allowed (RFC 5322 §4.4)
    const mailbox = toMailbox(value, current);
    current = [];
    if (group) group.members.push(mailbox);
    else items.push(mailbox);
  };
  for (const token of tokenize(value)) {
    const closer = CLOSERS[token.kind];
    if (closer && (token.end - token.start < 2 || value[token.end - 1] !== closer)) return `an unterminated ${token.kind}`;
    const special = token.kind === 'special' ? value[token.start] : '';
    if (special === ',') {
      endMailbox();
    } else if (special === ':' && !current.some((t) => t.kind === 'angle')) {
      if (group) return 'a group inside a group';
      if (current.length === 0) return 'a group without a name';
      group = { kind: 'group', name: unfold(value.slice(current[0]!.start, current.at(-1)!.end)), members: [] };
      current = [];
    } else if (special === ';') {
      if (!group) return 'a ";" outside a group';
      endMailbox();
      items.push(group);
      group = null;
    } else {
      current.push(token);
    }
  }
  endMailbox();
  if (group) items.push(group); // a group missing its final ";" is closed here
  return items;
}

function toMailbox(value: string, tokens: Token[]): WrittenMailbox {
  const text = unfold(value.slice(tokens[0]!.start, tokens.at(-1)!.end));
  const angle = tokens.find((t) => t.kind === 'angle');
  // name-addr: the address is inside <>, after an obsolete route "@a,@b:" if any;
  // addr-spec: the tokens themselves, without comments and whitespace.
  const spec = angle
    ? value.slice(angle.start + 1, angle.end - 1).replace(/^[^"]*:/, '')
    : tokens
        .filter((t) => t.kind !== 'comment')
        .map((t) => value.slice(t.start, t.end))
        .join('');
  return { kind: 'mailbox', text, key: spec.replace(/[\r\n \t]/g, '').toLowerCase() };
}
