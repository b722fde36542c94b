// The key lifecycle as a pure state machine:
//
//   pending → active → retiring → revoked → removed
//
// pending   generated; its record is to be published; it does not sign
// active    signs; at most one per chain and algorithm (a chain: the domain's
//           own keys, or those of one client of the relay, see `client`)
// retiring  no longer signs; its record stays so mail in flight still verifies
// revoked   its record is published with an empty p= (RFC 6376 §3.6.1)
// removed   record withdrawn, private key file deleted; final
//
// Also allowed: pending → revoked (a key abandoned before it signed),
// pending → removed (one made by mistake: it never signed, so no mail
// depends on its record), and retiring → active (taking back a key that was replaced too early; it never
// left DNS). A revoked key never signs again and a removed key never changes.
//
// Nothing here reads or writes anything. `decide` answers "may this key move
// to that state now, and what else moves with it?" with either the list of
// transitions to apply, or a refusal saying what is wrong and how to mend it:
//
//   const d = decide(store.list(domain), key.id, 'active', { at: now, by: 'cli', why: 'keys activate' });
//   if (!d.ok) throw new UserError(d.reason, d.hint);
//   // one IMMEDIATE transaction, for each t of d.transitions:
//   //   UPDATE keys SET state = t.to, <timestampColumn(t.to)> = t.at [, retired_at = NULL when t.to is active]
//   //     WHERE id = t.keyId AND state = t.from     -- 0 rows changed: someone was faster, roll back
//   //   INSERT INTO events (key_id, domain, selector, from_state, to_state, at, by, why) VALUES (t.…)
//
// Activating a key moves its chain's active key of the same algorithm to
// retiring in the same decision (it comes first in `transitions`), so the
// store never holds two active keys of one algorithm, not even between two
// statements. `applyTransitions` gives the keys as they are afterwards, for
// callers (and tests) that plan again without a database.
import type { Algorithm } from './key-material.ts';

export type KeyState = 'pending' | 'active' | 'retiring' | 'revoked' | 'removed';
export const KEY_STATES: readonly KeyState[] = ['pending', 'active', 'retiring', 'revoked', 'removed'];

/** Who made a step: a person at the CLI, the rotation scheduler, or the DNS publisher. */
export type Actor = 'cli' | 'scheduler' | 'dns';

/** The fields of a key the lifecycle looks at; the store's rows fit it. Timestamps are ISO 8601 (UTC). */
export interface LifecycleKey {
  id: number;
  domain: string;
  selector: string;
  algorithm: Algorithm;
  state: KeyState;
  /** The client whose chain the key is in; null or absent: the domain's own chain. */
  client?: string | null;
  createdAt: string;
  activatedAt: string | null;
  retiredAt: string | null;
  revokedAt: string | null;
  /** Absent in rows of a store that predates the removed state. */
  removedAt?: string | null;
}

/** One step, as data: the store applies it and writes it to the events table as it is. */
export interface Transition {
  keyId: number;
  domain: string;
  selector: string;
  /** null: the key was created (its first event). */
  from: KeyState | null;
  to: KeyState;
  /** ISO 8601, UTC. */
  at: string;
  by: Actor;
  why: string;
}

export type LifecycleDecision =
  | { ok: true; transitions: Transition[] }
  /** One line for people: what is wrong (`reason`) — how to mend it (`hint`). */
  | { ok: false; reason: string; hint: string };

export interface StepContext {
  at: Date;
  by: Actor;
  why: string;
}

/** The states each state may move to. */
const NEXT: Record<KeyState, readonly KeyState[]> = {
  pending: ['active', 'revoked', 'removed'],
  active: ['retiring'],
  retiring: ['active', 'revoked'],
  revoked: ['removed'],
  removed: [],
};

/** The timestamp column (as a LifecycleKey field) a state sets when a key enters it. */
export const STATE_TIMESTAMP: Record<Exclude<KeyState, 'pending'>, 'activatedAt' | 'retiredAt' | 'revokedAt' | 'removedAt'> = {
  active: 'activatedAt',
  retiring: 'retiredAt',
  revoked: 'revokedAt',
  removed: 'removedAt',
};

/**
 * May key `keyId` (one of `keys`, the domain's keys or all of them) move to `to`?
 * A key already in `to` gives ok with no transitions, so asking twice is harmless.
 */
export function decide(keys: readonly LifecycleKey[], keyId: number, to: KeyState, step: StepContext): LifecycleDecision {
  const key = keys.find((k) => k.id === keyId);
  if (!key) return refuse(`no key with id ${keyId}`, 'see `dkim-relay keys list`');
  const name = `key ${key.selector} for ${key.domain}`;
  if (key.state === to) return { ok: true, transitions: [] };
  if (!NEXT[key.state].includes(to)) return refuse(...refusal(name, key.state, to, key));

  const at = step.at.toISOString();
  const own: Transition = { keyId: key.id, domain: key.domain, selector: key.selector, from: key.state, to, at, by: step.by, why: step.why };
  if (to !== 'active') return { ok: true, transitions: [own] };

  // At most one active key per chain and algorithm: the one it replaces retires first.
  const replaced = keys.filter((k) => k.id !== key.id && sameChain(k, key) && k.algorithm === key.algorithm && k.state === 'active');
  const retiring: Transition[] = replaced.map((old) => ({
    keyId: old.id,
    domain: old.domain,
    selector: old.selector,
    from: 'active',
    to: 'retiring',
    at,
    by: step.by,
    why: `replaced by ${key.selector}`,
  }));
  return { ok: true, transitions: [...retiring, own] };
}

/** The first event of a key: it exists, pending (or active when created with --activate). */
export function creation(key: Pick<LifecycleKey, 'id' | 'domain' | 'selector' | 'state'>, step: StepContext): Transition {
  return { keyId: key.id, domain: key.domain, selector: key.selector, from: null, to: key.state, at: step.at.toISOString(), by: step.by, why: step.why };
}

/** The keys as they are once `transitions` are applied; keys not named are returned as they were. */
export function applyTransitions<K extends LifecycleKey>(keys: readonly K[], transitions: readonly Transition[]): K[] {
  return keys.map((key) => {
    let next = key;
    for (const t of transitions) {
      if (t.keyId !== key.id || t.from === null) continue;
      if (next.state !== t.from) throw new Error(`transition ${t.from} → ${t.to} of key ${key.id} applied to a ${next.state} key`);
      next = { ...next, state: t.to, [STATE_TIMESTAMP[t.to as Exclude<KeyState, 'pending'>]]: t.at };
      // Back to active: it retires anew when replaced again.
      if (t.to === 'active') next = { ...next, retiredAt: null };
    }
    return next;
  });
}

/** Both keys are in one chain: the same domain, and the same client (or none). */
export function sameChain(a: Pick<LifecycleKey, 'domain' | 'client'>, b: Pick<LifecycleKey, 'domain' | 'client'>): boolean {
  return a.domain === b.domain && (a.client ?? null) === (b.client ?? null);
}

/** Does a key in this state sign mail? */
export function signs(state: KeyState): boolean {
  return state === 'active';
}

/** Must DNS serve a record for a key in this state? (revoked: with an empty p=) */
export function published(state: KeyState): boolean {
  return state !== 'removed';
}

function refuse(reason: string, hint: string): LifecycleDecision {
  return { ok: false, reason, hint };
}

function refusal(name: string, from: KeyState, to: KeyState, key: LifecycleKey): [string, string] {
  const cli = `--domain ${key.domain} --selector ${key.selector}`;
  if (from === 'removed') return [`${name} was removed`, 'a removed key is gone for good: generate a new key'];
  if (from === 'revoked' && to !== 'removed') {
    return [`${name} is revoked and never signs again`, 'generate a new key instead'];
  }
  if (from === 'active' && to === 'revoked') {
    return [`${name} is still signing`, `retire it first: dkim-relay keys retire ${cli}`];
  }
  if (from === 'active' && to === 'removed') {
    return [`${name} is still signing`, `retire and revoke it first: dkim-relay keys retire ${cli}`];
  }
  if (to === 'removed') {
    return [`${name} is ${from}, not revoked`, `revoke it first: dkim-relay keys revoke ${cli}`];
  }
  if (to === 'retiring') return [`${name} is ${from}, not active`, 'only an active key can retire'];
  return [`${name} cannot go from ${from} to ${to}`, `the lifecycle is ${KEY_STATES.join(' → ')}`];
}
