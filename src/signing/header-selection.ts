// Which header fields a signature covers, and the h= list that says so
// (RFC 6376 §5.4).

import type { HeaderField } from '../message/header.ts';

/**
 * Never signed, even when configured. These are trace and transit fields
 * that MTAs add or rewrite after we sign (RFC 6376 §5.4.1 says signers
 * should not sign them): a signature over them breaks at the next hop, and
 * an absent-but-listed one would forbid every later hop from adding it.
 * DKIM-Signature is here because our own field is hashed separately, and
 * covering other signatures adds nothing. Keys are lower-case.
 */
export const UNSIGNABLE_HEADERS: ReadonlySet<string> = new Set([
  'dkim-signature',
  'received',
  'return-path',
  'delivered-to',
  'x-original-to',
  'authentication-results',
  'arc-seal',
  'arc-message-signature',
  'arc-authentication-results',
]);

export interface HeaderSelection {
  /** Names for h=, in hash order, in the configured capitalisation. */
  names: string[];
  /** The fields to hash, same order; shorter than `names` by the oversigned absences. */
  fields: HeaderField[];
}

/**
 * Every instance of each configured name is signed, bottom-up, since that is
 * the order in which verifiers take repeated names from h= (RFC 6376
 * §5.4.2). Names in `oversign` are listed once more than they occur, so no
 * instance can be added later without breaking the signature; an
 * oversigned name that is not present is therefore listed once. Oversigned
 * names are signed even if missing from `headers`, and From always is
 * (RFC 6376 §5.4: it MUST be signed; first in h= when not configured).
 * Names compare case-insensitively; the first spelling given is used in h=.
 */
export function selectHeaders(fields: HeaderField[], headers: string[], oversign: string[]): HeaderSelection {
  const over = new Set(oversign.map((n) => n.toLowerCase()));
  const spelling = new Map<string, string>();
  for (const name of [...headers, ...oversign]) {
    if (!/^[!-9;-~]+$/.test(name)) throw new Error(`invalid header name to sign: ${JSON.stringify(name)}`);
    const key = name.toLowerCase();
    if (!UNSIGNABLE_HEADERS.has(key) && !spelling.has(key)) spelling.set(key, name);
  }
  const order = [...spelling.keys()];
  if (!spelling.has('from')) {
    spelling.set('from', 'From');
    order.unshift('from');
  }

  const names: string[] = [];
  const selected: HeaderField[] = [];
  for (const key of order) {
    const name = spelling.get(key)!;
    const present = fields.filter((f) => f.key === key);
    for (let i = present.length - 1; i >= 0; i--) {
      names.push(name);
      selected.push(present[i]!);
    }
    if (over.has(key)) names.push(name);
  }
  return { names, fields: selected };
}
