// The relay's background work, each task by its name, and when a failing one
// is worth a log line. Pure: the clock is passed in.
//
// A task that fails at every run (a smart host down for a night: a probe every
// 30 seconds) would otherwise write the same line a thousand times and hide
// everything else. So a failure is logged once per cause: again only when the
// cause changes, when it comes back after a run that worked, or as a reminder
// once an hour while it lasts. Every failure is counted all the same.

export const BACKGROUND_TASKS = [
  'rotation',
  'dns-observation',
  'dmarc-readiness',
  'extension-probe',
  'notice-mail',
  'queue-maintenance',
  'queue-space',
  'metrics',
  'dmarc-reports',
  'key-store',
  'key-token',
] as const;
export type BackgroundTask = (typeof BACKGROUND_TASKS)[number];

/** How long a failure that goes on with the same cause stays quiet before a reminder. */
export const REMIND_AFTER_MS = 60 * 60_000;

/** What is known of one task's failures; also the shape `status` reads back, so fields are only ever added. */
export interface TaskHealth {
  task: BackgroundTask;
  /** failing: its last run failed; recovered: a run worked since. */
  state: 'failing' | 'recovered';
  /** The last failure, one line. */
  cause: string;
  /** Failures in a row with this cause. */
  repeats: number;
  /** The first of them. */
  since: string;
  lastFailedAt: string;
  recoveredAt: string | null;
  /** Failures of any cause since the relay started. */
  total: number;
  /** When the last line about it was logged. */
  loggedAt: string;
}

export type LogLine = 'failed' | 'still-failing' | 'recovered';

export interface HealthDecision {
  health: TaskHealth;
  /** Which line to log now, if any. */
  log: LogLine | undefined;
}

export function afterFailure(previous: TaskHealth | undefined, task: BackgroundTask, cause: string, now: number): HealthDecision {
  const at = new Date(now).toISOString();
  const total = (previous?.total ?? 0) + 1;
  if (!previous || previous.state === 'recovered' || previous.cause !== cause) {
    return { health: { task, state: 'failing', cause, repeats: 1, since: at, lastFailedAt: at, recoveredAt: null, total, loggedAt: at }, log: 'failed' };
  }
  const remind = now - Date.parse(previous.loggedAt) >= REMIND_AFTER_MS;
  return {
    health: { ...previous, repeats: previous.repeats + 1, lastFailedAt: at, total, loggedAt: remind ? at : previous.loggedAt },
    log: remind ? 'still-failing' : undefined,
  };
}

/** A run that worked: news only when the task was failing. */
export function afterSuccess(previous: TaskHealth | undefined, now: number): HealthDecision | undefined {
  if (!previous || previous.state !== 'failing') return undefined;
  const at = new Date(now).toISOString();
  return { health: { ...previous, state: 'recovered', recoveredAt: at, loggedAt: at }, log: 'recovered' };
}

/** A failure's cause as one line: the first line of its message. */
export function causeOf(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n')[0]!.trim() || (err instanceof Error ? err.name : 'unknown error');
}
