// One structured line per message and per lifecycle event (pino): JSON for
// journald and log shippers, or one human line (`log.format: text`) for a
// terminal. Levels are named ("info"), not pino's numbers.
import { isatty } from 'node:tty';
import { format } from 'node:util';
import { pino, type DestinationStream, type Logger } from 'pino';
import { textLine } from './log-text.ts';

export type { Logger };

export type LogFormat = 'json' | 'text';

/** Paths that could ever hold secrets: redacted whatever the caller logs. */
const REDACT = ['privateKey', '*.privateKey', 'password', '*.password', 'pass', '*.pass', 'auth.pass', '*.auth.pass'];

/** Unset: text for a person at a terminal, JSON for anything else (journald, a file, a pipe). */
export function defaultLogFormat(fd: 1 | 2): LogFormat {
  return isatty(fd) ? 'text' : 'json';
}

/** Logs go to stderr unless told otherwise, so `sign` can write the message to stdout. */
export function createLogger(level: string, fd: 1 | 2 = 2, logFormat: LogFormat = defaultLogFormat(fd)): Logger {
  const destination = pino.destination({ fd, sync: fd === 2 });
  return pino(
    {
      level,
      base: { service: 'dkim-relay' },
      redact: { paths: REDACT, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    logFormat === 'text' ? asText(destination) : destination,
  );
}

/** Each JSON line pino makes, written as one human line instead. */
function asText(destination: ReturnType<typeof pino.destination>): DestinationStream {
  return {
    write: (line: string) => destination.write(textLine(line)),
    flush: () => destination.flush(),
    flushSync: () => destination.flushSync(),
  } as DestinationStream;
}

/**
 * What libraries print with console.* (nodemailer warns that way) becomes a
 * log line of its own, so the output holds nothing but log lines.
 */
export function routeConsoleTo(logger: Logger): void {
  const to =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (...args: unknown[]) =>
      logger[level]({ source: 'console' }, format(...args));
  console.log = to('info');
  console.info = to('info');
  console.debug = to('debug');
  console.warn = to('warn');
  console.error = to('error');
}

/** A logger that drops everything (tests, one-shot commands). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
