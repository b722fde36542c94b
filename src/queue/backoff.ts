// When to try a deferred recipient again, and when to give up: pure decisions
// on an injected clock and an injected random source.
//
// The n-th retry waits firstRetry × 2^(n-1), capped at maxRetry, then
// shortened by up to `jitter` of itself at random, so recipients deferred
// together (an upstream down) do not all come back in the same second, and
// no wait is ever longer than configured. A recipient still undelivered
// maxAge after the message was received is bounced (RFC 5321 §4.5.4.1: give
// up after 4-5 days); its last retry is moved to that deadline rather than
// past it.
import { durationSeconds } from '../config/duration.ts';

export interface RetryPolicy {
  firstRetryMs: number;
  maxRetryMs: number;
  maxAgeMs: number;
  /** Send a delay warning (RFC 3464 action=delayed) once a recipient has waited this long; null: never. */
  delayWarningMs: number | null;
  /** Fraction of each wait taken off at random, 0 to 1. */
  jitter: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  firstRetryMs: 60_000,
  maxRetryMs: 3_600_000,
  maxAgeMs: 5 * 86_400_000,
  delayWarningMs: null,
  jitter: 0.2,
};

/** The queue section of the configuration, in the policy's units. */
export function retryPolicy(config: { retryAfter: string; maxRetryInterval: string; maxAge: string; delayWarning?: string | undefined }): RetryPolicy {
  return {
    firstRetryMs: durationSeconds(config.retryAfter) * 1000,
    maxRetryMs: durationSeconds(config.maxRetryInterval) * 1000,
    maxAgeMs: durationSeconds(config.maxAge) * 1000,
    delayWarningMs: config.delayWarning === undefined ? null : durationSeconds(config.delayWarning) * 1000,
    jitter: DEFAULT_RETRY_POLICY.jitter,
  };
}

/** Wait before retry number `attempt` (1 after the first failure); `random` returns [0, 1). */
export function retryDelay(attempt: number, policy: RetryPolicy, random: () => number): number {
  const doublings = Math.min(Math.max(attempt - 1, 0), 52); // 2^52 × anything exceeds any cap; avoids Infinity
  const capped = Math.min(policy.firstRetryMs * 2 ** doublings, policy.maxRetryMs);
  return Math.round(capped * (1 - policy.jitter * random()));
}

export type AfterFailure = { action: 'retry'; at: number } | { action: 'bounce'; reason: 'expired' };

/**
 * After a temporary failure at `now` of a recipient that has now failed
 * `attempts` times, of a message received at `receivedAt`.
 */
export function afterTemporaryFailure(input: { receivedAt: number; attempts: number; now: number }, policy: RetryPolicy, random: () => number): AfterFailure {
  const deadline = input.receivedAt + policy.maxAgeMs;
  if (input.now >= deadline) return { action: 'bounce', reason: 'expired' };
  return { action: 'retry', at: Math.min(input.now + retryDelay(input.attempts, policy, random), deadline) };
}

/**
 * Whether a delay warning is due for a recipient: the policy asks for them,
 * none was sent yet, the message has waited long enough, and the sender
 * asked for delay notices (RFC 3461 §4.1: NOTIFY=DELAY; with no NOTIFY the
 * choice is the relay's, and it warns).
 */
export function delayWarningDue(input: { receivedAt: number; now: number; warnedAt: number | null; notify: string[] | null }, policy: RetryPolicy): boolean {
  if (policy.delayWarningMs === null || input.warnedAt !== null) return false;
  if (input.notify !== null && !input.notify.includes('DELAY')) return false;
  return input.now - input.receivedAt >= policy.delayWarningMs;
}
