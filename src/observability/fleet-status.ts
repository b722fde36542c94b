// The fleet sharing one PostgreSQL key store, as `status`, the status page and
// the metrics see it: each relay's last heartbeat, flagged when it signs with
// an older key set than the newest any relay holds, or has not been heard
// from; and which heartbeats are old enough to forget. Pure: the heartbeats
// are read by the key store, the clock is passed in.
import type { FleetNode } from '../keys/pg-store.ts';
import { GONE_AFTER_MS, SILENT_AFTER_MS } from '../keys/heartbeat.ts';
import { when } from '../rotation/plan.ts';

export { GONE_AFTER_MS, SILENT_AFTER_MS };

/**
 * Gone this long again, its heartbeat row is deleted: the fleet's listing
 * shows a relay that dropped away for a week, then forgets it
 * (`keys fleet forget` does so at once).
 */
export const FORGET_AFTER_MS = 2 * GONE_AFTER_MS;

export const FLEET_NODE_STATES = ['current', 'catching-up', 'outdated', 'silent', 'gone'] as const;
export type FleetNodeState = (typeof FLEET_NODE_STATES)[number];

export interface FleetStatus {
  /** The newest key generation the store or any relay holds. */
  generation: number | null;
  /** Since when this relay has not reached the store; null while it does. */
  unreachableSince: string | null;
  nodes: (FleetNode & { state: FleetNodeState })[];
}

/**
 * A relay takes a new key set up within one look at the store (5 s) even when
 * no notification reaches it. Until then an older generation is catching up,
 * not outdated: heartbeats read a moment after a change would flag every
 * relay that had not yet written its own.
 */
export const CATCH_UP_MS = 6_000;

export function fleetStatus(input: { nodes: readonly FleetNode[]; generation: number | null; unreachableSince: string | null; now: Date }): FleetStatus {
  const newest = Math.max(input.generation ?? -1, ...input.nodes.map((n) => n.generation));
  // When the newest set appeared, as the first relay to load it says; unknown: as good as now.
  const appeared = Math.min(input.now.getTime(), ...input.nodes.filter((n) => n.generation === newest).map((n) => Date.parse(n.loadedAt)));
  const nodes = input.nodes.map((n) => {
    const quiet = input.now.getTime() - Date.parse(n.lastContact);
    const behind = n.generation < newest && Date.parse(n.lastContact) - appeared > CATCH_UP_MS;
    const older = n.generation < newest ? (behind ? 'outdated' : 'catching-up') : 'current';
    const state: FleetNodeState = quiet > GONE_AFTER_MS ? 'gone' : quiet > SILENT_AFTER_MS ? 'silent' : older;
    return { ...n, state };
  });
  return { generation: newest < 0 ? null : newest, unreachableSince: input.unreachableSince, nodes };
}

/** An outdated or silent relay needs a person; one catching up or gone does not. */
export function needsAttention(state: FleetNodeState): boolean {
  return state === 'outdated' || state === 'silent';
}

/** How many things in the fleet need a person: the store away, relays outdated or silent. */
export function fleetAttention(fleet: FleetStatus): number {
  return (fleet.unreachableSince ? 1 : 0) + fleet.nodes.filter((n) => needsAttention(n.state)).length;
}

/** The heartbeats to delete: relays not heard from for FORGET_AFTER_MS. */
export function forgottenNodes(nodes: readonly FleetNode[], now: Date): FleetNode[] {
  return nodes.filter((n) => now.getTime() - Date.parse(n.lastContact) > FORGET_AFTER_MS);
}

/** What a relay's state says in words, as `status` and the status page show it. */
export function nodeStateText(n: FleetStatus['nodes'][number], newest: number | null): string {
  switch (n.state) {
    case 'gone':
      return `not heard from since ${when(n.lastContact)}: taken for decommissioned (forgotten ${when(Date.parse(n.lastContact) + FORGET_AFTER_MS)}, or at once by keys fleet forget ${n.name})`;
    case 'silent':
      return `not heard from since ${when(n.lastContact)}`;
    case 'outdated':
      return `signs with key generation ${n.generation} (outdated) loaded ${when(n.loadedAt)}`;
    case 'catching-up':
      return `key generation ${n.generation} loaded ${when(n.loadedAt)}, catching up with generation ${newest ?? 'unknown'}`;
    case 'current':
      return `key generation ${n.generation} loaded ${when(n.loadedAt)}, last contact ${when(n.lastContact)}`;
  }
}

export function storeAwayText(since: string): string {
  return `the key store has not answered since ${when(since)}: signing with the keys held, rotation paused`;
}

export function renderFleet(fleet: FleetStatus): string {
  const lines = [`fleet (key generation ${fleet.generation ?? 'unknown'})`];
  if (fleet.unreachableSince) lines.push(`! ${storeAwayText(fleet.unreachableSince)}`);
  for (const n of fleet.nodes)
    lines.push(`${needsAttention(n.state) ? '! ' : '  '}${n.name}  ${n.address}  ${n.version}  ${nodeStateText(n, fleet.generation)}`);
  return lines.join('\n');
}
