// The decisions every key store engine takes the same way when it adds a key
// or takes a step; the engines only read and write rows.
import { UserError } from '../common/errors.ts';
import { nextSelector } from '../common/names.ts';
import type { Algorithm } from './key-material.ts';
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
