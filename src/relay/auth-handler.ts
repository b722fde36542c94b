// AUTH PLAIN and LOGIN (RFC 4954) against access.users, with the login
// limits of listen.maxAuthFailures and listen.maxAuthFailuresPerMinute.
import type { SMTPServerOptions } from 'smtp-server';
import type { AuthLimiter } from '../access/auth-limiter.ts';
import { checkUser } from '../access/passwords.ts';
import type { Logger } from '../common/logger.ts';
import { later, reply } from './handler-reply.ts';

export interface AuthHandlerOptions {
  /** Password hashes by user name. */
  users: ReadonlyMap<string, string>;
  authLimiter: AuthLimiter;
  /** listen.authPenaltySeconds, for the log. */
  penaltySeconds: number;
  logger: Logger;
  /** Session `sessionId` logged in. */
  authenticated(sessionId: string): void;
}

export function authHandler(options: AuthHandlerOptions): NonNullable<SMTPServerOptions['onAuth']> {
  const { users, logger } = options;
  let overallWarnedAt = 0;
  return (auth, session, callback) => {
    const client = session.remoteAddress;
    // Reserved before scrypt runs, so parallel tries from one client gain nothing (RFC 4954 §6: 454 is temporary).
    const reservation = options.authLimiter.reserve(client);
    if (!reservation.ok) {
      const seconds = Math.ceil(reservation.retryMs / 1000);
      if (reservation.why === 'blocked') return later(callback, reply(421, `4.7.0 Too many failed logins from ${client}, try again in ${seconds} s`));
      if (reservation.why === 'busy') return later(callback, reply(454, `4.7.0 A login from ${client} is still being checked, try again in ${seconds} s`));
      // At most one warning a minute: it is the sign of a distributed guessing run, which must not flood the log.
      if (Date.now() - overallWarnedAt >= 60_000) {
        overallWarnedAt = Date.now();
        logger.warn({ client }, 'AUTH refused with 454: listen.maxAuthFailuresPerMinute used up by all clients together (logged once a minute)');
      }
      return later(callback, reply(454, `4.7.0 Too many failed logins on this relay, try again in ${seconds} s`));
    }
    const { attempt } = reservation;
    checkUser(users, auth.username ?? '', auth.password ?? '').then(
      (ok) => {
        if (ok) {
          attempt.succeeded();
          logger.info({ client, user: auth.username }, 'auth');
          options.authenticated(session.id);
          return callback(null, { user: auth.username });
        }
        const failure = attempt.failed();
        // One warning per client and window: a password-guessing run must not flood the log.
        if (failure.first)
          logger.warn({ client, user: auth.username }, 'AUTH failed; further failures from this client within listen.authPenaltySeconds are not logged');
        if (failure.blocked) {
          // Once per client and window: until the window ends its logins are refused before any check.
          logger.warn(
            { client, seconds: options.penaltySeconds },
            'AUTH: client shut out after listen.maxAuthFailures failed logins; its logins are refused until the window ends',
          );
          return callback(reply(421, `4.7.0 Too many failed logins from ${client}, try again later`));
        }
        setTimeout(() => callback(reply(535, '5.7.8 Authentication credentials invalid')), failure.delayMs);
      },
      (err: Error) => {
        attempt.succeeded(); // nothing was checked: the reserved failure goes back
        callback(reply(454, `4.7.0 Temporary authentication failure: ${err.message}`));
      },
    );
  };
}
