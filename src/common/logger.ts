// One structured line per message and per lifecycle event (pino): JSON for
// journald and log shippers, or one human line (`log.format: text`) for a
// terminal. Levels are named ("info"), not pino's numbers.
import { isatty } from 'node:tty';
import { format } from 'node:util';
import { pino, type DestinationStream, type Logger } from 'pino';
import { textLine } from './log-text.ts';

export type { Logger };

export type LogFormat = 'json' | 'text';

/** Fields that could ever hold secrets: redacted whatever the caller logs, at the top or one level down (and `auth.pass` below that). */
const SECRET_FIELDS: ReadonlySet<string> = new Set(['privateKey', 'password', 'pass']);
const CENSOR = '[redacted]';

/**
 * The fields of a log line with every secret field replaced by CENSOR, the
 * caller's objects left as they are. A line without one is returned as it
 * is: pino's own `redact` copies and serializes every object-valued field of
 * every line to look for them, a cost paid on each message for lines that
 * never carry a secret.
 */
export function withoutSecrets(fields: Record<string, unknown>): Record<string, unknown> {
  let out = fields;
  for (const key in fields) {
    const value = fields[key];
    if (SECRET_FIELDS.has(key)) out = replaced(out, fields, key, CENSOR);
    else if (isObject(value)) {
      const inner = secretsOneLevel(value);
      if (inner !== value) out = replaced(out, fields, key, inner);
    }
  }
  return out;
}

function secretsOneLevel(value: object): object {
  let out = value;
  for (const key of SECRET_FIELDS) if (Object.hasOwn(value, key)) out = replaced(out, value, key, CENSOR);
  const auth = (value as Record<string, unknown>).auth;
  if (isObject(auth) && Object.hasOwn(auth, 'pass')) out = replaced(out, value, 'auth', replaced(auth, auth, 'pass', CENSOR));
  return out;
}

function isObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null;
}

/** `current` with `key` set to `value`: a copy of `original` made the first time (an Error keeps its message and stack). */
function replaced<T extends object>(current: T, original: T, key: string, value: unknown): T {
  let copy = current;
  if (current === original) {
    copy = Object.create(Object.getPrototypeOf(original), Object.getOwnPropertyDescriptors(original)) as T;
    // V8's `stack` reads the error it belongs to: a copy keeps the text.
    if (original instanceof Error) Object.defineProperty(copy, 'stack', { value: original.stack, enumerable: false, writable: true, configurable: true });
  }
  Object.defineProperty(copy, key, { value, enumerable: true, writable: true, configurable: true });
  return copy;
}

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
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }), log: withoutSecrets },
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
