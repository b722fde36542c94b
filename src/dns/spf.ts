// SPF records (RFC 7208) read for what matters to a sender: how the record
// ends ("all"), and how many DNS lookups a receiver makes to evaluate it.
// Pure: the records of included domains are fetched elsewhere and passed in.

/** RFC 7208 §4.6.4: more than 10 DNS-querying terms make SPF a permerror. */
export const SPF_LOOKUP_LIMIT = 10;
/** How deep includes are followed: well past the limit, and never forever. */
export const SPF_MAX_DEPTH = 10;

export function isSpf(txt: string): boolean {
  return /^v=spf1(\s|$)/i.test(txt.trim());
}

export interface SpfTerms {
  /** The qualifier of the "all" mechanism ("+", "-", "~", "?"), or undefined without one. */
  all: string | undefined;
  includes: string[];
  redirect: string | undefined;
  /** Terms that each cost a DNS lookup: include, a, mx, ptr, exists, redirect. */
  lookups: number;
}

export function spfTerms(record: string): SpfTerms {
  const terms: SpfTerms = { all: undefined, includes: [], redirect: undefined, lookups: 0 };
  for (const term of record.trim().split(/\s+/).slice(1)) {
    const mechanism = /^([+\-~?]?)([a-z]+)(?:[:/](.*))?$/i.exec(term);
    const modifier = /^([a-z][a-z0-9_.-]*)=(.*)$/i.exec(term);
    if (modifier) {
      if (modifier[1]!.toLowerCase() === 'redirect') {
        terms.redirect = modifier[2]!.toLowerCase();
        terms.lookups++;
      }
      continue;
    }
    if (!mechanism) continue;
    const name = mechanism[2]!.toLowerCase();
    if (name === 'all') terms.all = mechanism[1] || '+';
    if (['include', 'a', 'mx', 'ptr', 'exists'].includes(name)) terms.lookups++;
    if (name === 'include' && mechanism[3]) terms.includes.push(mechanism[3].toLowerCase());
  }
  return terms;
}

/** Domains an SPF record makes a receiver fetch another SPF record from. */
export function spfReferences(record: string): string[] {
  const terms = spfTerms(record);
  return terms.redirect ? [...terms.includes, terms.redirect] : terms.includes;
}

/**
 * DNS lookups to evaluate `record`, counting included and redirected records
 * recursively from `fetched` (domain → its SPF record; missing = unknown, counted as itself only).
 */
export function countSpfLookups(record: string, fetched: ReadonlyMap<string, string>, depth = 0, seen = new Set<string>()): number {
  const terms = spfTerms(record);
  let count = terms.lookups;
  if (depth >= SPF_MAX_DEPTH) return count;
  for (const domain of spfReferences(record)) {
    const next = fetched.get(domain);
    if (next === undefined || seen.has(domain)) continue;
    count += countSpfLookups(next, fetched, depth + 1, new Set([...seen, domain]));
  }
  return count;
}
