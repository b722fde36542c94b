// One thing `dns check` has to say about a record: how serious, what it is,
// and how to mend it, in plain words.

/** fail: mail fails or will fail; warn: fragile or risky; advice: worth changing; info: how things stand. */
export type Level = 'fail' | 'warn' | 'advice' | 'info';

export interface Finding {
  level: Level;
  /** Stable name for scripts and monitoring, e.g. "p-truncated". */
  code: string;
  message: string;
  /** What to do about it; absent for info lines. */
  fix?: string;
}

export function finding(level: Level, code: string, message: string, fix?: string): Finding {
  return fix === undefined ? { level, code, message } : { level, code, message, fix };
}
