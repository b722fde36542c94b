// The rotation planner: from the keys, each domain's policy, the clock and
// what DNS served, the steps due now, and when each key takes its next one.
// Pure: it reads nothing, writes nothing and never looks at the real clock.
//
//   const { actions, next, resolved } = plan({ now, keys, policy, servers, observations, oldestQueued, notified });
//
// The scheduler (one holder of the `rotation` lease at a time) applies the
// actions in order, each in its own transaction:
//
//   create    generate a key { domain, algorithm, bits, selector } as pending;
//             record creation(...) from src/keys/lifecycle.ts as its first event,
//             and publish its record (by hand, or by the DNS publisher)
//   activate  apply `transitions` (the old active key of the algorithm retires,
//   revoke      the new one signs; a revoked key's record is republished with
//   remove      an empty p=; a removed key's record is withdrawn and its file
//             deleted) and write each transition to the events table
//   notify    tell rotation.notify (and the log) `why` and the `records` to
//             publish, then remember `notice` in the notifications table
//
// and forgets the notices in `resolved`: their condition is over, so a new
// occurrence is told again. `next` is what `status` shows for each key.
//
// Idempotent by construction: every action is due because of a state that the
// action itself changes (a create makes the pending key that marks a rotation
// in progress; a transition changes the key's state; a notice is remembered),
// so planning again after applying it, or after a restart, neither repeats
// nor loses a step.
//
// Rules (each chain apart: a domain's own keys, and each client's keys of its
// own in that domain, which share only the domain's policy and DNS servers):
// - a rotation starts when the active key has signed for `interval` and no
//   newer pending key of its algorithm exists; the new key has the same
//   algorithm and size, and a fresh selector (delegated mode: the first
//   selector of the domain's fixed set that no key holds; a key holds its
//   selector until it is removed; a client's chain: its name first);
// - a pending key newer than the active key of its algorithm activates once
//   every server that must be asked has served its record, matching, without
//   a break for `publishFor` (up to its last check); when several qualify, the
//   newest; an older pending key is never activated automatically;
// - a retiring key is revoked `retireAfter` after it retired, and not while a
//   message it signed is still queued: on this relay, or on another relay of
//   the fleet (as its last heartbeat says), nor while a relay of the fleet is
//   silent (its queue is unknown) until it is heard from again or taken for
//   gone;
// - a revoked key is removed `removeAfter` after its revocation;
// - a pending key older than `stuckAfter`, and an active or retiring key
//   whose record a server no longer serves, are notified.
import type { Algorithm } from '../keys/key-material.ts';
import { decide, type LifecycleKey, type Transition } from '../keys/lifecycle.ts';
import { nextSelector } from '../common/names.ts';
import { txtRecord, type TxtRecord } from '../keys/record.ts';
import type { DnsObservation } from './observation.ts';
import type { RotationPolicy } from './policy.ts';
import { delegatedName, type Delegation } from '../dns/delegation.ts';
import { GONE_AFTER_MS, SILENT_AFTER_MS, type QueuedBySigner } from '../keys/heartbeat.ts';

export interface PlanKey extends LifecycleKey {
  bits: number;
  publicData: string;
}

export interface PlanInput {
  now: Date;
  /** Every key of the store, removed ones included (their selectors stay taken, or free in delegated mode). */
  keys: readonly PlanKey[];
  policy: (domain: string) => RotationPolicy;
  /** The servers that must serve a domain's records: its zone's authoritative servers and dns.resolvers. */
  servers: (domain: string) => readonly string[];
  /** The rows of dns_observations, see observation.ts. */
  observations: readonly DnsObservation[];
  /** When the oldest queued message signed by the key was signed; undefined when none awaits delivery. */
  oldestQueued?: (keyId: number) => Date | undefined;
  /** Relays sharing the key store, as their last heartbeats tell what each holds queued (the scheduler: the others; `status`: all). */
  peers?: readonly PeerQueue[];
  /** Notices already sent (the notifications table). */
  notified?: ReadonlySet<string>;
}

export interface PeerQueue {
  name: string;
  address: string;
  lastContact: string;
  /** null: the relay does not say (an older version, or its queue could not be read). */
  oldestQueued: QueuedBySigner | null;
}

interface KeyRef {
  keyId: number;
  domain: string;
  selector: string;
}

export type Action =
  | { kind: 'create'; domain: string; client?: string; algorithm: Algorithm; bits: number; selector: string; replaces: number; why: string }
  | (KeyRef & { kind: 'activate' | 'revoke'; transitions: Transition[]; why: string })
  /** `record`: the record to withdraw. */
  | (KeyRef & { kind: 'remove'; transitions: Transition[]; record: TxtRecord; why: string })
  /** `notice`: a stable name of the condition, remembered so it is told once. */
  | (KeyRef & { kind: 'notify'; notice: string; why: string; records: TxtRecord[] });

export type StepName = 'rotate' | 'activate' | 'revoke' | 'remove';

/** A key's next step, for `status`: `at` is null when it waits for something other than time. */
export interface NextStep extends KeyRef {
  step: StepName;
  at: string | null;
  text: string;
}

export interface Plan {
  actions: Action[];
  next: NextStep[];
  /** Notices sent earlier whose condition is over: forget them. */
  resolved: string[];
}

export function plan(input: PlanInput): Plan {
  const now = input.now.getTime();
  const actions: Action[] = [];
  const next: NextStep[] = [];
  const notices = new Set<string>();
  const notify = (key: PlanKey, notice: string, why: string, records: TxtRecord[]) => {
    notices.add(notice);
    if (!input.notified?.has(notice)) actions.push({ kind: 'notify', ...ref(key), notice, why, records });
  };

  for (const [domain, keys] of byDomain(input.keys)) {
    const policy = input.policy(domain);
    const servers = input.servers(domain);
    const taken = new Set(keys.map((k) => k.selector));
    const held = new Set(keys.filter((k) => k.state !== 'removed').map((k) => k.selector));
    const step = (why: string) => ({ at: input.now, by: 'scheduler' as const, why });
    const transition = (key: PlanKey, to: 'active' | 'revoked' | 'removed', why: string): Transition[] => {
      const decision = decide(keys, key.id, to, step(why));
      if (!decision.ok) throw new Error(`planned an impossible step: ${decision.reason}`);
      return decision.transitions;
    };

    // Old keys move on first: a removal frees its selector for a rotation planned below.
    for (const key of keys) {
      if (key.state === 'active' || key.state === 'retiring') {
        const lost = input.observations.filter((o) => o.keyId === key.id && servers.includes(o.server) && LOST.has(o.lastState));
        if (lost.length > 0) {
          const why = `${key.selector}._domainkey.${domain} (${key.state}) is not served by ${lost.map((o) => `${o.server} (${o.lastState}: ${o.detail})`).join(', ')}; receivers cannot verify what it signs: publish it`;
          notify(key, `lost:${key.id}`, why, [record(key, policy.delegation)]);
        }
      }
      if (key.state === 'retiring') {
        const due = Date.parse(key.retiredAt ?? key.createdAt) + policy.retireAfter;
        const held = queuedWith(key.id, input, now);
        if (due <= now && held.kind === 'none') {
          const why = `retired ${when(key.retiredAt ?? key.createdAt)}, ${duration(policy.retireAfter)} ago, and no queued mail is signed with it`;
          actions.push({ kind: 'revoke', ...ref(key), transitions: transition(key, 'revoked', why), why });
        } else if (due <= now && held.kind === 'queued') {
          next.push({
            ...ref(key),
            step: 'revoke',
            at: null,
            text: `revoked once the queued mail it signed (oldest ${when(held.oldest)}${held.on}) is delivered`,
          });
        } else if (due <= now && held.kind === 'unknown') {
          next.push({ ...ref(key), step: 'revoke', at: null, text: `revocation held: ${held.why}` });
        } else {
          next.push({
            ...ref(key),
            step: 'revoke',
            at: iso(due),
            text: `revoked ${when(due)}${held.kind !== 'none' ? ' if no mail it signed is still queued' : ''}`,
          });
        }
      }
      if (key.state === 'revoked') {
        const due = Date.parse(key.revokedAt ?? key.createdAt) + policy.removeAfter;
        if (due <= now) {
          const why = `revoked ${when(key.revokedAt ?? key.createdAt)}, ${duration(policy.removeAfter)} ago`;
          actions.push({ kind: 'remove', ...ref(key), transitions: transition(key, 'removed', why), record: record(key, policy.delegation), why });
          held.delete(key.selector);
        } else {
          next.push({ ...ref(key), step: 'remove', at: iso(due), text: `removed ${when(due)}` });
        }
      }
    }

    for (const [algorithm, client] of chainsOf(keys)) {
      const mine = keys.filter((k) => k.algorithm === algorithm && (k.client ?? null) === client);
      const active = mine.find((k) => k.state === 'active');
      const candidates = mine.filter((k) => k.state === 'pending' && (!active || newer(k, active)));

      // DNS-gated activation.
      const gates = new Map(candidates.map((k) => [k.id, gate(k, servers, input.observations, policy.publishFor, now)]));
      const ready = candidates.filter((k) => gates.get(k.id)!.ready).sort((a, b) => (newer(a, b) ? -1 : 1))[0];
      if (ready) {
        const why = `every DNS server asked (${servers.length}) has served its record for ${duration(policy.publishFor)}`;
        actions.push({ kind: 'activate', ...ref(ready), transitions: transition(ready, 'active', why), why });
      }
      for (const key of mine.filter((k) => k.state === 'pending' && k !== ready)) {
        const g = gates.get(key.id);
        if (!g) {
          next.push({ ...ref(key), step: 'activate', at: null, text: `older than the active key ${active!.selector}: activate it by hand, or revoke it` });
        } else {
          next.push({ ...ref(key), step: 'activate', at: g.at === null ? null : iso(g.at), text: g.text });
        }
        // Served by every server and only waiting out publishFor, it activates by itself: nothing for a person to do.
        const waitsOnItsOwn = g !== undefined && g.at !== null && g.at > now;
        if (now - Date.parse(key.createdAt) >= policy.stuckAfter && !waitsOnItsOwn) {
          notify(
            key,
            `stuck:${key.id}`,
            `${key.selector}._domainkey.${domain} has waited for DNS since ${when(key.createdAt)}: ${g?.text ?? 'it is older than the active key'}`,
            [record(key, policy.delegation)],
          );
        }
      }

      // Start a rotation.
      if (active && policy.interval !== null && !ready && candidates.length === 0) {
        const due = Date.parse(active.activatedAt ?? active.createdAt) + policy.interval;
        if (due > now) {
          next.push({ ...ref(active), step: 'rotate', at: iso(due), text: `rotates ${when(due)}` });
        } else {
          // Delegated selectors are a fixed set of CNAMEs the domain's owner published, for the domain's own chain
          // (`keys generate --client` refuses such a domain).
          const selector =
            policy.delegation && client === null ? policy.delegation.selectors.find((s) => !held.has(s)) : nextSelector(taken, input.now, client ?? undefined);
          if (selector === undefined) {
            const holders = keys.filter((k) => policy.delegation!.selectors.includes(k.selector) && k.state !== 'removed' && held.has(k.selector));
            next.push({
              ...ref(active),
              step: 'rotate',
              at: null,
              text: `rotation due: waits until a delegated selector is free (${holders.map((k) => `${k.selector} is ${k.state}`).join(', ')})`,
            });
          } else {
            taken.add(selector);
            held.add(selector);
            const why = `${active.selector} has signed since ${when(active.activatedAt ?? active.createdAt)}, longer than ${duration(policy.interval)}`;
            actions.push({ kind: 'create', domain, ...(client ? { client } : {}), algorithm, bits: active.bits, selector, replaces: active.id, why });
          }
        }
      }
    }
  }
  const resolved = [...(input.notified ?? [])].filter((n) => !notices.has(n)).sort();
  return { actions, next, resolved };
}

type Held = { kind: 'none' } | { kind: 'queued'; oldest: number; on: string } | { kind: 'unknown'; why: string };

/**
 * Whether mail signed with the key may still wait for delivery: in this
 * relay's queue, or in another relay's as its last heartbeat says. A relay
 * silent longer than SILENT_AFTER_MS may hold such mail without telling (it
 * signs on with the keys it holds while the store is away from it); one
 * silent longer than GONE_AFTER_MS is taken for decommissioned.
 */
function queuedWith(keyId: number, input: PlanInput, now: number): Held {
  const peers = (input.peers ?? []).filter((p) => now - Date.parse(p.lastContact) <= GONE_AFTER_MS);
  const silent = peers.find((p) => now - Date.parse(p.lastContact) > SILENT_AFTER_MS);
  if (silent) {
    const forget = `back, taken for gone ${when(Date.parse(silent.lastContact) + GONE_AFTER_MS)}, or forgotten (keys fleet forget ${silent.name})`;
    return {
      kind: 'unknown',
      why: `relay ${silent.name} (${silent.address}) has not been heard from since ${when(silent.lastContact)}; its queue may hold mail signed with this key (until it is ${forget})`,
    };
  }
  const mute = peers.find((p) => p.oldestQueued === null);
  if (mute)
    return {
      kind: 'unknown',
      why: `relay ${mute.name} (${mute.address}) does not report what it holds queued (an older version, or its queue could not be read)`,
    };
  const times = [
    { at: input.oldestQueued?.(keyId)?.getTime(), on: '' },
    ...peers.map((p) => ({
      at: p.oldestQueued![keyId] === undefined ? undefined : Date.parse(p.oldestQueued![keyId]!),
      on: ` on relay ${p.name} (${p.address})`,
    })),
  ].filter((t): t is { at: number; on: string } => t.at !== undefined);
  if (times.length === 0) return { kind: 'none' };
  const oldest = times.reduce((a, b) => (b.at < a.at ? b : a));
  return { kind: 'queued', oldest: oldest.at, on: oldest.on };
}

/** States of a check that mean a server does not serve the record (unreachable does not say). */
const LOST = new Set(['missing', 'mismatch', 'malformed']);

interface Gate {
  ready: boolean;
  /** When it activates if DNS keeps serving it; null while a server does not serve it. */
  at: number | null;
  text: string;
}

function gate(key: PlanKey, servers: readonly string[], observations: readonly DnsObservation[], publishFor: number, now: number): Gate {
  if (servers.length === 0) return { ready: false, at: null, text: 'waits: no DNS server is known to ask' };
  const seen = servers.map((server) => ({ server, o: observations.find((o) => o.keyId === key.id && o.server === server) }));
  const missing = seen.filter(({ o }) => !o || o.lastState !== 'match' || o.firstSeenMatching === null);
  if (missing.length > 0) {
    const why = missing.map(({ server, o }) => (o ? `${server}: ${o.lastState}` : `${server}: not asked yet`)).join(', ');
    return { ready: false, at: null, text: `waits for DNS: served by ${servers.length - missing.length} of ${servers.length} servers (${why})` };
  }
  const since = seen.map(({ o }) => Date.parse(o!.firstSeenMatching!));
  const shown = Math.min(...seen.map(({ o }) => Date.parse(o!.lastChecked) - Date.parse(o!.firstSeenMatching!)));
  const at = Math.max(...since) + publishFor;
  const ready = shown >= publishFor;
  // Served long enough, but the last checks are older than that: only a new check can tell.
  const text = !ready && at <= now ? 'activates at the next DNS check if every server still serves it' : `activates ${when(at)} if DNS keeps serving it`;
  return { ready, at, text };
}

/** Each algorithm of the domain's own chain, then of each client's chain the domain's keys hold (by name). */
function chainsOf(keys: readonly PlanKey[]): [Algorithm, string | null][] {
  const clients = [...new Set(keys.map((k) => k.client ?? null).filter((c): c is string => c !== null))].sort();
  return [null, ...clients].flatMap((client) => (['rsa', 'ed25519'] as const).map((algorithm): [Algorithm, string | null] => [algorithm, client]));
}

function byDomain(keys: readonly PlanKey[]): Map<string, PlanKey[]> {
  const sorted = [...keys].sort((a, b) => (a.domain < b.domain ? -1 : a.domain > b.domain ? 1 : newer(a, b) ? 1 : -1));
  const map = new Map<string, PlanKey[]>();
  for (const key of sorted) map.set(key.domain, [...(map.get(key.domain) ?? []), key]);
  return map;
}

/** Created later (the id breaks a tie). */
function newer(a: LifecycleKey, b: LifecycleKey): boolean {
  const diff = Date.parse(a.createdAt) - Date.parse(b.createdAt);
  return diff !== 0 ? diff > 0 : a.id > b.id;
}

function ref(key: PlanKey): KeyRef {
  return { keyId: key.id, domain: key.domain, selector: key.selector };
}

/** The record as DNS must serve it; in delegated mode, at the CNAME's target in the relay's zone. */
function record(key: PlanKey, delegation: Delegation | undefined): TxtRecord {
  const plain = txtRecord(key);
  return delegation ? { ...plain, name: delegatedName(key.selector, key.domain, delegation.zone) } : plain;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** "2026-11-28 03:15 UTC" */
export function when(time: number | string): string {
  return `${iso(typeof time === 'number' ? time : Date.parse(time))
    .slice(0, 16)
    .replace('T', ' ')} UTC`;
}

/** 172800000 → "2d": the largest unit that divides it. */
export function duration(ms: number): string {
  const units: [string, number][] = [
    ['w', 604_800_000],
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ];
  for (const [unit, size] of units) if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}
