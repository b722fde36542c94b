// How long a relay of a fleet may be quiet: each writes its heartbeat at every
// look at the store (5 s). The fleet's listing and the rotation's hold on a
// revocation read its silence the same way.

/** Three heartbeats missed in a row and a relay is "not heard from". */
export const SILENT_AFTER_MS = 15_000;

/**
 * Silent this long, a relay is taken for decommissioned: still listed, but no
 * longer a failure of `status`, nor a reason to hold a revocation. A relay
 * down for maintenance is flagged all week.
 */
export const GONE_AFTER_MS = 7 * 24 * 3600_000;

/** Key id → when the oldest message still queued on a relay signed with that key came in (ISO 8601). */
export type QueuedBySigner = Readonly<Record<string, string>>;
