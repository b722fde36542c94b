// Two To: or Cc: fields, as printers, scanners and ERP systems send them, are
// merged into one before signing: RFC 5322 §3.6 allows one of each, and
// Gmail refuses mail with more. Addresses keep their order; an address seen
// before (compared case-insensitively) is dropped.
import { fieldsNamed } from '../../message/header.ts';
import { parseAddressList, type AddressItem, type WrittenGroup, type WrittenMailbox } from './address-list.ts';
import { FOLD_AT, foldField, longestFieldLine } from '../../message/mime/fold.ts';
import { removeField, replaceRaw, type HeaderBlock } from './header-block.ts';
import { fieldLabel, Refusal } from './refusal.ts';
import { MAX_LINE_OCTETS } from '../../message/mime/scan.ts';
import type { Walk } from './walk.ts';

/** The address-list fields whose copies can be merged without changing who the message is for. */
export const MERGEABLE_FIELDS = ['To', 'Cc', 'Bcc', 'Reply-To'];

/** Names of mergeable fields the block holds more than once. */
export function duplicatedAddressFields(block: HeaderBlock): string[] {
  return MERGEABLE_FIELDS.filter((name) => fieldsNamed(block.fields, name).length > 1);
}

/** Merges every copy of the field into the first one; throws a Refusal when a copy is not an address list. */
export function mergeDuplicates(block: HeaderBlock, name: string, walk: Walk): void {
  const copies = fieldsNamed(block.fields, name);
  const label = fieldLabel(copies[0]!.name);
  const lists = copies.map((field) => {
    const items = parseAddressList(field.raw.slice(field.raw.indexOf(':') + 1));
    if (typeof items === 'string') {
      throw new Refusal(550, `5.6.0 The message has ${copies.length} ${label}: headers and one cannot be merged (${items}); RFC 5322 allows one`);
    }
    return items;
  });
  const { items, dropped } = merge(lists.flat());
  const raw = fold(copies[0]!.name, items);
  replaceRaw(block, copies[0]!, raw);
  for (const copy of copies.slice(1)) removeField(block, copy);
  const removed = dropped ? `, ${dropped} repeated address${dropped > 1 ? 'es' : ''} removed` : '';
  walk.changes.push(`merged ${copies.length} ${label}: fields into one${removed}`);
}

function merge(all: AddressItem[]): { items: AddressItem[]; dropped: number } {
  const seen = new Set<string>();
  const groups = new Map<string, WrittenGroup>();
  const items: AddressItem[] = [];
  let dropped = 0;
  const keep = (m: WrittenMailbox): boolean => {
    if (seen.has(m.key)) {
      dropped++;
      return false;
    }
    seen.add(m.key);
    return true;
  };
  for (const item of all) {
    if (item.kind === 'mailbox') {
      if (keep(item)) items.push(item);
      continue;
    }
    // Groups of the same name become one group, so no name appears twice.
    const key = item.name.toLowerCase();
    let group = groups.get(key);
    if (!group) {
      group = { kind: 'group', name: item.name, members: [] };
      groups.set(key, group);
      items.push(group);
    }
    for (const m of item.members) if (keep(m)) group.members.push(m);
  }
  // An empty group ("undisclosed-recipients:;") says there are no visible
  // recipients; beside real addresses it is dropped, and one is enough.
  const nonEmpty = items.filter((i) => i.kind === 'mailbox' || i.members.length > 0);
  if (nonEmpty.length > 0) return { items: nonEmpty, dropped };
  return { items: items.slice(0, 1), dropped };
}

/** "Name: a, b, g: c, d;" folded with CRLF SP between items at 78 columns. */
function fold(name: string, items: AddressItem[]): string {
  const pieces: string[] = [];
  items.forEach((item, i) => {
    const comma = i < items.length - 1 ? ',' : '';
    if (item.kind === 'mailbox') {
      pieces.push(item.text + comma);
    } else if (item.members.length === 0) {
      pieces.push(`${item.name}:;${comma}`);
    } else {
      item.members.forEach((m, j) => {
        const text = (j === 0 ? `${item.name}: ` : '') + m.text;
        pieces.push(j < item.members.length - 1 ? `${text},` : `${text};${comma}`);
      });
    }
  });
  const lines: string[] = [];
  let line = `${name}:`;
  for (const piece of pieces) {
    // The first piece stays beside the name: a fold right after the colon trips some canonicalizers.
    if (line.length + 1 + piece.length > FOLD_AT && line !== `${name}:`) {
      lines.push(line);
      line = ` ${piece}`;
    } else {
      line += ` ${piece}`;
    }
  }
  lines.push(line);
  let raw = lines.join('\r\n');
  // One long display name may still need folding within itself.
  if (longestFieldLine(raw) > FOLD_AT) raw = foldField(raw, FOLD_AT).raw;
  if (longestFieldLine(raw) > MAX_LINE_OCTETS)
    throw new Refusal(554, `5.6.0 The merged ${fieldLabel(name)}: header has a line over 998 octets and no whitespace to fold it at`);
  return raw;
}
