// What the rotation scheduler keeps beside the keys: who holds the lease (so
// when several relays share one store, one acts at a time), what each DNS
// server served for each key, which notices were sent, and which keys' DNS
// changes are still to be applied. In keys.db beside a SQLite store
// (rotation-tables.ts), in the shared database beside a PostgreSQL one
// (pg-rotation-tables.ts), where every write carries the writer's fence.
import type { Awaitable } from '../keys/key-store.ts';
import type { Fence } from '../keys/fence.ts';
import type { DnsObservation } from './observation.ts';

export interface LeaseRow {
  holder: string;
  expiresAt: string;
  epoch: number;
}

export interface UnpublishedRow {
  keyId: number;
  since: string;
  reason: string;
}

export interface RotationState {
  /**
   * Takes or renews the lease `name` for `holder` until `until`; the epoch it
   * holds it at, or null when another holder's lease has not expired. The
   * epoch grows at every change of holder, never at a renewal.
   */
  takeLease(name: string, holder: string, now: Date, until: Date): Awaitable<number | null>;
  /** Extends the lease `holder` holds at `epoch` until `until`; false when it no longer holds it so. */
  renewLease(name: string, holder: string, epoch: number, until: Date): Awaitable<boolean>;
  /** Gives the lease back, if `holder` still has it, so another relay need not wait for it to expire. */
  releaseLease(name: string, holder: string): Awaitable<void>;
  leaseHolder(name: string): Awaitable<LeaseRow | undefined>;
  observations(): Awaitable<DnsObservation[]>;
  saveObservations(rows: readonly DnsObservation[], fence: Fence): Awaitable<void>;
  /** The notices already sent (their condition still holds). */
  notified(): Awaitable<Set<string>>;
  /** Remembers a notice as sent; false when it already was (another pass sent it). */
  recordNotification(notice: string, keyId: number, at: Date, fence: Fence): Awaitable<boolean>;
  /** Forgets notices whose condition is over, so a new occurrence is told again. */
  forgetNotifications(notices: readonly string[], fence: Fence): Awaitable<void>;
  /** Keys whose DNS change is still to be applied, oldest first. */
  unpublished(): Awaitable<UnpublishedRow[]>;
  /** Remembers that a key's DNS change is to be applied (again); `since` stays that of the first try. */
  markUnpublished(keyId: number, at: Date, reason: string, fence: Fence): Awaitable<void>;
  clearUnpublished(keyId: number, fence: Fence): Awaitable<void>;
  close(): Awaitable<void>;
}
