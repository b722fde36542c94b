// One structured JSON line per message and per lifecycle event (pino).
import { pino, type Logger } from 'pino';

export type { Logger };

/** Paths that could ever hold secrets: redacted whatever the caller logs. */
const REDACT = ['privateKey', '*.privateKey', 'password', '*.password', 'pass', '*.pass', 'auth.pass', '*.auth.pass'];

/** Logs go to stderr unless told otherwise, so `sign` can write the message to stdout. */
export function createLogger(level: string, fd: 1 | 2 = 2): Logger {
  return pino(
    { level, base: { service: 'dkim-relay' }, redact: { paths: REDACT, censor: '[redacted]' }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ fd, sync: fd === 2 }),
  );
}

/** A logger that drops everything (tests, one-shot commands). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
