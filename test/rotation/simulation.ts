// A key store, DNS and queue in memory, driven by an injected clock: applies
// the planner's actions the way the scheduler will, so tests can follow a
// rotation from start to end without sleeping.
import assert from 'node:assert/strict';
import type { Algorithm } from '../../src/keys/key-material.ts';
import { applyTransitions, creation, type Transition } from '../../src/keys/lifecycle.ts';
import { observe, type DnsObservation, type ObservedState } from '../../src/rotation/observation.ts';
import { plan, type Action, type Plan, type PlanKey } from '../../src/rotation/plan.ts';
import type { RotationPolicy } from '../../src/rotation/policy.ts';

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

export const POLICY: RotationPolicy = { interval: 90 * DAY, publishFor: 48 * HOUR, retireAfter: 7 * DAY, removeAfter: 30 * DAY, stuckAfter: 7 * DAY };

export class Simulation {
  now: Date;
  keys: PlanKey[] = [];
  observations = new Map<string, DnsObservation>();
  queued = new Map<number, Date>();
  notified = new Set<string>();
  events: Transition[] = [];
  /** Every action applied, in order. */
  applied: Action[] = [];
  readonly policy: (domain: string) => RotationPolicy;
  readonly servers: (domain: string) => readonly string[];
  private nextId = 1;

  constructor(
    start: string,
    policy: (domain: string) => RotationPolicy = () => POLICY,
    servers: (domain: string) => readonly string[] = () => ['ns1', 'ns2', 'resolver'],
  ) {
    this.now = new Date(start);
    this.policy = policy;
    this.servers = servers;
  }

  advance(ms: number): this {
    this.now = new Date(this.now.getTime() + ms);
    return this;
  }

  /** A key as the CLI would have made it, `ageMs` ago (active ones activated then). */
  addKey(domain: string, algorithm: Algorithm, state: PlanKey['state'], ageMs: number, selector?: string, client?: string): PlanKey {
    const at = new Date(this.now.getTime() - ageMs).toISOString();
    const id = this.nextId++;
    const key: PlanKey = {
      id,
      domain,
      selector: selector ?? `k${id}`,
      client: client ?? null,
      algorithm,
      bits: algorithm === 'rsa' ? 2048 : 256,
      state,
      publicData: `pub${id}`,
      createdAt: at,
      activatedAt: state === 'active' ? at : null,
      retiredAt: null,
      revokedAt: null,
      removedAt: null,
    };
    this.keys.push(key);
    return key;
  }

  key(selector: string, domain = 'example.com'): PlanKey {
    const live = this.keys.filter((k) => k.domain === domain && k.selector === selector);
    const found = live.find((k) => k.state !== 'removed') ?? live.at(-1);
    assert.ok(found, `no key ${selector} for ${domain}`);
    return found;
  }

  /** One DNS check of `key` at `server`, as the checker records it. */
  dns(key: PlanKey, server: string, state: ObservedState): this {
    const id = `${key.id}@${server}`;
    this.observations.set(
      id,
      observe(this.observations.get(id), { keyId: key.id, server, state, detail: state === 'match' ? 'serves this key' : `record ${state}` }, this.now),
    );
    return this;
  }

  /** Every server of the key's domain gives `state`, or the states given per server. */
  dnsEverywhere(key: PlanKey, state: ObservedState | Record<string, ObservedState>): this {
    for (const server of this.servers(key.domain)) this.dns(key, server, typeof state === 'string' ? state : (state[server] ?? 'missing'));
    return this;
  }

  plan(): Plan {
    return plan({
      now: this.now,
      keys: this.keys,
      policy: this.policy,
      servers: this.servers,
      observations: [...this.observations.values()],
      oldestQueued: (id) => this.queued.get(id),
      notified: this.notified,
    });
  }

  /** Plans, applies every action, then plans again at the same moment: nothing may be due twice. */
  step(): Action[] {
    const first = this.plan();
    for (const action of first.actions) this.apply(action);
    for (const notice of first.resolved) this.notified.delete(notice);
    const again = this.plan();
    assert.deepEqual(again.actions, [], `actions repeated after applying them: ${JSON.stringify(again.actions)}`);
    assert.deepEqual(again.resolved, []);
    return first.actions;
  }

  private apply(action: Action): void {
    this.applied.push(action);
    if (action.kind === 'create') {
      const id = this.nextId++;
      const key: PlanKey = {
        id,
        domain: action.domain,
        selector: action.selector,
        client: action.client ?? null,
        algorithm: action.algorithm,
        bits: action.bits,
        state: 'pending',
        publicData: `pub${id}`,
        createdAt: this.now.toISOString(),
        activatedAt: null,
        retiredAt: null,
        revokedAt: null,
        removedAt: null,
      };
      this.keys.push(key);
      this.events.push(creation(key, { at: this.now, by: 'scheduler', why: action.why }));
    } else if (action.kind === 'notify') {
      this.notified.add(action.notice);
    } else {
      this.keys = applyTransitions(this.keys, action.transitions);
      this.events.push(...action.transitions);
    }
  }
}

/** kind:selector of each action, for compact assertions. */
export function summary(actions: readonly Action[]): string[] {
  return actions.map((a) => (a.kind === 'notify' ? `notify:${a.notice.split(':')[0]}:${a.selector}` : `${a.kind}:${a.selector}`));
}
