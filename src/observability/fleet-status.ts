// The fleet sharing one PostgreSQL key store, as `status` and the metrics see
// it: each relay's last heartbeat, flagged when it signs with an older key
// set than the newest any relay holds, or has not been heard from. Pure: the
// heartbeats are read by the key store, the clock is passed in.
import type { FleetNode } from '../keys/pg-store.ts';
import { when } from '../rotation/plan.ts';

/** A relay writes its heartbeat at every look at the store (5 s); three missed in a row and it is "not heard from". */
export const SILENT_AFTER_MS = 15_000;

/**
 * Silent this long, a relay is taken for decommissioned: still listed, but no
 * longer a failure of `status` (its heartbeat row stays in the store, where an
 * operator may delete it). A relay down for maintenance is flagged all week.
 */
export const GONE_AFTER_MS = 7 * 24 * 3600_000;

export type FleetNodeState = 'current' | 'outdated' | 'silent' | 'gone';

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
    const state: FleetNodeState = quiet > GONE_AFTER_MS ? 'gone' : quiet > SILENT_AFTER_MS ? 'silent' : behind ? 'outdated' : 'current';
    return { ...n, state };
  });
  return { generation: newest < 0 ? null : newest, unreachableSince: input.unreachableSince, nodes };
}

/** How many things in the fleet need a person: the store away, relays outdated or silent. */
export function fleetAttention(fleet: FleetStatus): number {
  return (fleet.unreachableSince ? 1 : 0) + fleet.nodes.filter((n) => n.state === 'outdated' || n.state === 'silent').length;
}

export function renderFleet(fleet: FleetStatus): string {
  const lines = [`fleet (key generation ${fleet.generation ?? 'unknown'})`];
  if (fleet.unreachableSince) lines.push(`! the key store has not answered since ${when(fleet.unreachableSince)}: signing with the keys held, rotation paused`);
  for (const n of fleet.nodes) {
    const what =
      n.state === 'gone'
        ? `not heard from since ${when(n.lastContact)}: taken for decommissioned (delete its fleet_nodes row to drop it)`
        : n.state === 'silent'
          ? `not heard from since ${when(n.lastContact)}`
          : n.state === 'outdated'
            ? `signs with key generation ${n.generation} (outdated) loaded ${when(n.loadedAt)}`
            : `key generation ${n.generation} loaded ${when(n.loadedAt)}, last contact ${when(n.lastContact)}`;
    lines.push(`${n.state === 'current' || n.state === 'gone' ? '  ' : '! '}${n.name}  ${n.address}  ${n.version}  ${what}`);
  }
  return lines.join('\n');
}
