// The decisions every key store engine takes the same way when it adds a key
// or takes a step; the engines only read and write rows.
import { UserError } from '../common/errors.ts';
import { nextSelector } from '../common/names.ts';
import type { Algorithm } from './key-material.ts';
import { KeyFileError } from './key-file.ts';
import type { ActiveKey, KeyProblem, StoredKey } from './key-store.ts';
import type { Actor, KeyState, Transition } from './lifecycle.ts';
import { parseTokenUri } from './pkcs11-objects.ts';
import type { Pkcs11Token } from './pkcs11-token.ts';

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
 * one whose key was removed (delegated selectors). Selectors are unique in
 * the domain across its chains: they are one DNS name each.
 */
export function chooseSelector(
  domain: string,
  existing: readonly { selector: string; algorithm: Algorithm; state: KeyState; client?: string | null }[],
  wanted: { selector: string | undefined; algorithm: Algorithm; activate: boolean; at: Date; client?: string | undefined },
): string {
  const held = new Set(existing.filter((k) => k.state !== 'removed').map((k) => k.selector));
  const chosen = wanted.selector ?? nextSelector(new Set(existing.map((k) => k.selector)), wanted.at, wanted.client);
  if (held.has(chosen)) {
    throw new UserError(`${domain} already has a key with selector ${chosen}`, 'choose another --selector, or leave it out for a fresh one');
  }
  const chain = wanted.client ?? null;
  if (wanted.activate && existing.some((k) => k.state === 'active' && k.algorithm === wanted.algorithm && (k.client ?? null) === chain)) {
    throw new UserError(
      `${chainName(domain, chain)} already has an active ${wanted.algorithm} key`,
      'generate without --activate, publish the record, then run `dkim-relay keys activate`',
    );
  }
  return chosen;
}

/** How people read a chain: "example.com", or "example.com (client scanner)". */
export function chainName(domain: string, client: string | null | undefined): string {
  return client ? `${domain} (client ${client})` : domain;
}

/** The key of a chain in the map of active keys: the domain's own chain is keyed by the domain alone. */
export function chainKey(domain: string, client?: string | null): string {
  return client ? `${domain} ${client}` : domain;
}

/** A chain's keys that sign, and the active keys that cannot (its mail waits). */
export interface ChainKeys {
  keys: ActiveKey[];
  problems: KeyFileError[];
}

/**
 * The active keys by chain (chainKey), each private key loaded by `load`. A key that
 * cannot be loaded is told to `onKeyProblem` once, and again only after it
 * was mended and broke anew: `reported` is what was told last time, and the
 * set returned is what to pass next time.
 */
export function groupActiveKeys<Row extends StoredKey>(
  rows: readonly Row[],
  load: (row: Row) => ActiveKey['privateKey'],
  reported: ReadonlySet<string>,
  onKeyProblem: (problem: KeyProblem) => void,
): { byChain: Map<string, ChainKeys>; reported: Set<string> } {
  const byChain = new Map<string, ChainKeys>();
  const problems = new Set<string>();
  for (const row of rows) {
    const chain = chainKey(row.domain, row.client);
    let entry = byChain.get(chain);
    if (!entry) byChain.set(chain, (entry = { keys: [], problems: [] }));
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
  return { byChain, reported: problems };
}

/**
 * The domain that signs mail from `fromDomain` in a chain: the domain itself
 * if that chain has an active key there, else its nearest parent that has
 * one (mail.example.com → example.com). `client` unset: the domains' own chains.
 */
export function nearestSigningDomain(active: ReadonlyMap<string, ChainKeys>, fromDomain: string, client?: string): string | null {
  let candidate = fromDomain.toLowerCase().replace(/\.$/, '');
  for (let dot = candidate.indexOf('.'); dot > 0; dot = candidate.indexOf('.')) {
    if (active.has(chainKey(candidate, client))) return candidate;
    candidate = candidate.slice(dot + 1);
  }
  return null;
}

/**
 * The event written once a removed key's objects are gone from its token
 * (destroyed, or found missing): sweeps skip keys that have it, so the token
 * is never asked about that key again.
 */
export const TOKEN_OBJECTS_GONE = 'its private key objects are gone from the PKCS#11 token';

/**
 * Destroys the objects of removed token keys whose TOKEN_OBJECTS_GONE event is
 * not written yet; returns the keys whose objects are gone now, with how many
 * objects were destroyed here (0: someone else destroyed them). A key of another
 * token, or a token that does not answer, is left for a later sweep.
 */
export function destroyRemovedTokenObjects(removed: readonly StoredKey[], token: Pkcs11Token): { key: StoredKey; destroyed: number }[] {
  const gone: { key: StoredKey; destroyed: number }[] = [];
  for (const key of removed) {
    if (key.state !== 'removed' || key.material !== 'pkcs11') continue;
    const ref = parseTokenUri(key.file);
    if (ref.token !== token.settings.token) continue;
    try {
      gone.push({ key, destroyed: token.destroy(ref) });
    } catch {
      // the token is away: its objects are destroyed at a later sweep
    }
  }
  return gone;
}

/** The TOKEN_OBJECTS_GONE event of a removed key. */
export function tokenObjectsGone(key: Pick<StoredKey, 'id' | 'domain' | 'selector'>, at: Date, by: Actor): Transition {
  return { keyId: key.id, domain: key.domain, selector: key.selector, from: 'removed', to: 'removed', at: at.toISOString(), by, why: TOKEN_OBJECTS_GONE };
}
