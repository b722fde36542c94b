// Which configured zone a record belongs to: the longest one that contains
// its name, so a delegated sub-zone (dkim.example.com) wins over its parent.
import { bare, type RecordChange } from './change.ts';

/** The longest of `zones` equal to `name` or a parent of it; undefined when none is. */
export function zoneOf(name: string, zones: readonly string[]): string | undefined {
  const n = bare(name);
  let best: string | undefined;
  for (const zone of zones.map(bare)) {
    if ((n === zone || n.endsWith(`.${zone}`)) && (best === undefined || zone.length > best.length)) best = zone;
  }
  return best;
}

/** The changes grouped by zone, in their order; changes outside every zone under `undefined`. */
export function byZone(changes: readonly RecordChange[], zones: readonly string[]): Map<string | undefined, RecordChange[]> {
  const groups = new Map<string | undefined, RecordChange[]>();
  for (const change of changes) {
    const zone = zoneOf(change.name, zones);
    groups.set(zone, [...(groups.get(zone) ?? []), change]);
  }
  return groups;
}
