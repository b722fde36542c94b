// What one DNS server served for one key, over time: a row of the
// dns_observations table. DNS-gated activation counts how long every server
// has served the key's record without a break, so a server that stops serving
// it (or cannot be asked) starts its clock again.
//
// The DNS checker, after asking `server` about `key` at `now`:
//
//   const row = observe(previousRow, { keyId: key.id, server, state, detail }, now);
//   INSERT OR REPLACE INTO dns_observations (key_id, server, first_seen_matching, last_checked, last_state, detail)
//
// Keep the rows of every server asked for a key: src/rotation/plan.ts reads them.

/** match, missing, mismatch, malformed as src/dns/published-key.ts reports them; unreachable: no answer. */
export type ObservedState = 'match' | 'missing' | 'mismatch' | 'malformed' | 'unreachable';

export interface DnsObservation {
  keyId: number;
  /** The server asked (an address, or a name as the checker knows it). */
  server: string;
  /** Since when this server has served the expected record at every check (ISO 8601); null when it does not now. */
  firstSeenMatching: string | null;
  lastChecked: string;
  lastState: ObservedState;
  detail: string;
}

export interface ServerCheck {
  keyId: number;
  server: string;
  state: ObservedState;
  detail: string;
}

/**
 * The observation after one more check. `maxGapMs`: when the previous check
 * is older than this, nobody saw the server in between, so a match starts a
 * new clock instead of continuing the old one.
 */
export function observe(previous: DnsObservation | undefined, check: ServerCheck, now: Date, maxGapMs = Infinity): DnsObservation {
  const at = now.toISOString();
  const continuous =
    previous !== undefined &&
    previous.lastState === 'match' &&
    previous.firstSeenMatching !== null &&
    now.getTime() - Date.parse(previous.lastChecked) <= maxGapMs;
  return {
    keyId: check.keyId,
    server: check.server,
    firstSeenMatching: check.state !== 'match' ? null : continuous ? previous.firstSeenMatching : at,
    lastChecked: at,
    lastState: check.state,
    detail: check.detail,
  };
}
