// The decisions every key store engine takes the same way when it adds a key
// or takes a step; the engines only read and write rows.
import { UserError } from '../common/errors.ts';
import { nextSelector } from '../common/names.ts';
import type { Algorithm } from './key-material.ts';
import { KeyFileError } from './key-file.ts';
import type { ActiveKey, KeyProblem, StoredKey } from './key-store.ts';
import type { KeyState } from './lifecycle.ts';

/** The column set when a key enters a state (bookkeeping: when it happened). */
export const STAMP_COLUMN: Record<Exclude<KeyState, 'pending'>, string> = {
  active: 'activated_at',
  retiring: 'retired_at',
  revoked: 'revoked_at',
  removed: 'removed_at',
};

/** The command a person runs for each step, named in the events it writes. */
export const VERB: Record<KeyState, string> = { pending: 'generate', active: 'activate', retiring: 'retire', revoked: 'revoke', removed: 'remove' };

/** Thrown inside a transaction when a key is no longer in the state a step leaves: the step is rolled back. */
export class StepRaced extends Error {}

/**
 * The selector of a new key of `domain`, given the keys it has (read inside
 * the transaction that inserts it). A fresh selector is never one used before
 * (caches may still hold its old record); a selector named on purpose may be
 * one whose key was removed (delegated selectors).
 */
export function chooseSelector(
  domain: string,
  existing: readonly { selector: string; algorithm: Algorithm; state: KeyState }[],
  wanted: { selector: string | undefined; algorithm: Algorithm; activate: boolean; at: Date },
): string {
  const held = new Set(existing.filter((k) => k.state !== 'removed').map((k) => k.selector));
  const chosen = wanted.selector ?? nextSelector(new Set(existing.map((k) => k.selector)), wanted.at);
  if (held.has(chosen)) {
    throw new UserError(`${domain} already has a key with selector ${chosen}`, 'choose another --selector, or leave it out for a fresh one');
  }
  if (wanted.activate && existing.some((k) => k.state === 'active' && k.algorithm === wanted.algorithm)) {
    throw new UserError(
      `${domain} already has an active ${wanted.algorithm} key`,
      'generate without --activate, publish the record, then run `dkim-relay keys activate`',
    );
  }
  return chosen;
}

/** A domain's keys that sign, and the active keys that cannot (its mail waits). */
export interface DomainKeys {
  keys: ActiveKey[];
  problems: KeyFileError[];
}

/**
 * The active keys by domain, each private key loaded by `load`. A key that
 * cannot be loaded is told to `onKeyProblem` once, and again only after it
 * was mended and broke anew: `reported` is what was told last time, and the
 * set returned is what to pass next time.
 */
export function groupActiveKeys<Row extends StoredKey>(
  rows: readonly Row[],
  load: (row: Row) => ActiveKey['privateKey'],
  reported: ReadonlySet<string>,
  onKeyProblem: (problem: KeyProblem) => void,
): { byDomain: Map<string, DomainKeys>; reported: Set<string> } {
  const byDomain = new Map<string, DomainKeys>();
  const problems = new Set<string>();
  for (const row of rows) {
    let entry = byDomain.get(row.domain);
    if (!entry) byDomain.set(row.domain, (entry = { keys: [], problems: [] }));
    try {
      entry.keys.push({ domain: row.domain, selector: row.selector, algorithm: row.algorithm, privateKey: load(row) });
    } catch (err) {
      if (!(err instanceof KeyFileError)) throw err;
      entry.problems.push(err);
      const id = `${row.id}:${err.problem}`;
      problems.add(id);
      if (!reported.has(id)) onKeyProblem({ domain: row.domain, selector: row.selector, problem: err.problem, line: err.toLine() });
    }
  }
  return { byDomain, reported: problems };
}
