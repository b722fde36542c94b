// The rotation policy of one signing domain: the `rotation` settings with the
// domain's overrides applied and durations in milliseconds, as the planner
// (src/rotation/plan.ts) takes them.
//
//   const policy = (domain: string) => policyFor(config.rotation, domain, delegation);
//
// `delegation` is the delegated-selector set-up, when the relay controls a zone
// the domain's selectors are CNAMEs into: rotation then uses the fixed
// `selectors` in turn instead of fresh ones.
import { createTask } from 'node-cron';
import { durationSeconds } from '../config/duration.ts';
import type { RotationConfig } from '../config/schema.ts';
import type { Delegation } from '../dns/delegation.ts';

export interface RotationPolicy {
  /** How long an active key signs before a rotation starts; null: never on its own. */
  interval: number | null;
  /** How long every DNS server must serve a new key's record, matching, before it signs. */
  publishFor: number;
  /** How long a retired key stays published before it is revoked. */
  retireAfter: number;
  /** How long a revoked key stays (record with empty p=) before it is removed. */
  removeAfter: number;
  /** How long a new key may wait for DNS before someone is told. */
  stuckAfter: number;
  delegation?: Delegation;
}

const ms = (text: string) => durationSeconds(text) * 1000;

export function policyFor(rotation: RotationConfig, domain: string, delegation?: Delegation): RotationPolicy {
  const own = rotation.domains[domain] ?? {};
  const interval = own.interval ?? rotation.interval;
  return {
    interval: interval === undefined || interval === 'off' ? null : ms(interval),
    publishFor: ms(own.publishFor ?? rotation.publishFor),
    retireAfter: ms(own.retireAfter ?? rotation.retireAfter),
    removeAfter: ms(own.removeAfter ?? rotation.removeAfter),
    stuckAfter: ms(own.stuckAfter ?? rotation.stuckAfter),
    ...(delegation ? { delegation } : {}),
  };
}

/**
 * Settings that work but probably not as meant, for `config check` to print.
 * A publishFor shorter than the time between two checks is allowed (tests use
 * "90s"), but a new key then waits for the next check all the same.
 */
export function rotationAdvice(rotation: RotationConfig): string[] {
  const advice: string[] = [];
  if (rotation.check === 'off') {
    if (rotation.interval !== undefined)
      advice.push(
        `rotation.interval (${rotation.interval}) is set but rotation.check is "off": this relay starts no rotation; another relay sharing the key store must run the scheduler`,
      );
    return advice;
  }
  const gap = longestGap(rotation.check);
  const times = [
    ['rotation', rotation.publishFor] as const,
    ...Object.entries(rotation.domains).map(([d, t]) => [`rotation.domains.${d}`, t.publishFor] as const),
  ];
  for (const [where, publishFor] of times) {
    if (publishFor !== undefined && ms(publishFor) < gap) {
      advice.push(
        `${where}.publishFor (${publishFor}) is shorter than the time between two checks of rotation.check "${rotation.check}" (${gap / 1000}s): new keys will wait for the next check`,
      );
    }
  }
  return advice;
}

/** The longest time between two runs of a cron expression, over its next runs. */
export function longestGap(expression: string): number {
  const task = createTask(expression, () => {});
  try {
    const runs = task.getNextRuns(64).map((d) => d.getTime());
    let longest = 0;
    for (let i = 1; i < runs.length; i++) longest = Math.max(longest, runs[i]! - runs[i - 1]!);
    return longest;
  } finally {
    task.destroy();
  }
}
