// The SMTP listener: a front door (admission, slots, implicit TLS) and
// smtp-server behind it, wired to AUTH (auth-handler.ts), the envelope
// policy (envelope-policy.ts), the command watch and the DATA deadline, and
// a DATA handler that hands each message on (relay-message.ts).
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { createSecureContext } from 'node:tls';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { NetworkList } from '../common/networks.ts';
import { authHandler } from './auth-handler.ts';
import { CommandWatch } from './command-watch.ts';
import type { Pool, Slot } from './connection-pools.ts';
import { limitData } from './data-deadline.ts';
import { envelopePolicy, intakeEnvelope } from './envelope-policy.ts';
import { openFrontDoor } from './front-door.ts';
import { reply } from './handler-reply.ts';
import type { RelayDeps } from './relay-deps.ts';
import { receiveAndRelay } from './relay-message.ts';
import { batchPipelinedReplies, closeAllSessions, closeSession, connectionOf, searchDotsNatively, serveSocket, sendReply } from './smtp-server-internals.ts';
import { limitStartTlsHandshake } from './starttls-deadline.ts';
import { replyError, replyText } from '../smtp/reply.ts';
import { DEFAULT_CIPHERS, DEFAULT_MIN_VERSION } from './tls-policy.ts';

/** What serves one listening port: the front door and the smtp-server behind it. */
export interface Listener {
  /** A connection the port accepted. */
  take(socket: Socket): void;
  /**
   * Ends the sessions, and calls back once all have closed. At a stop, each
   * command from now on is answered 421 (the transaction in flight finishes);
   * at a reload (`letFinish`) a session goes on until its client quits, as
   * Postfix's smtpd does: a client that sends several messages is not deferred
   * by a reload. Either way, what is still open after closeTimeout is told 421.
   */
  close(callback: () => void, letFinish?: boolean): void;
  /** Sessions a close let finish are told 421 at their next command from now on. */
  hurry(): void;
}

/** What the listener keeps per session, by session id. */
interface SessionState {
  pool: Pool;
  watch: CommandWatch;
  slot: Slot;
  /** A stranger's time to authenticate. */
  deadline?: NodeJS.Timeout | undefined;
}

export const CLOSE_TIMEOUT_MS = 30_000;
/** How long after the 421s a stop waits for the sessions' ends before it goes on. */
const GIVE_UP_MS = 5000;

/** A session id as smtp-server makes them (16 base-32 characters). */
function sessionId(): string {
  return BigInt(`0x${randomBytes(10).toString('hex')}`)
    .toString(32)
    .padStart(16, '0');
}

export function createListener(deps: RelayDeps, implicitTls: boolean): Listener {
  const { config, logger } = deps;
  const networks = new NetworkList(config.access.networks);
  const users = new Map(config.access.users.map((u) => [u.name, u.password]));
  const disabled: string[] = [];
  if (!deps.tls) disabled.push('STARTTLS'); // never fall back to smtp-server's public test certificate
  if (users.size === 0) disabled.push('AUTH');
  // As Postfix's smtpd_tls_auth_only: AUTH is neither offered nor taken before TLS, so no
  // client sends its password in clear only to be told 538 afterwards. Per session, since
  // smtp-server's option would also hide it after STARTTLS.
  const beforeTls = config.access.allowInsecureAuth || disabled.includes('AUTH') ? disabled : [...disabled, 'AUTH'];
  const canAuth = users.size > 0 && (!!deps.tls || config.access.allowInsecureAuth);
  const tls = deps.tls && {
    key: deps.tls.key,
    cert: deps.tls.cert,
    ciphers: config.listen.tls?.ciphers ?? DEFAULT_CIPHERS,
    minVersion: config.listen.tls?.minVersion ?? DEFAULT_MIN_VERSION,
    honorCipherOrder: true,
  };
  const sessions = new Map<string, SessionState>();
  /** Set while closing: the last session has ended. */
  let lastSessionEnded: (() => void) | undefined;

  const options: SMTPServerOptions = {
    name: deps.hostname,
    banner: 'dkim-relay', // smtp-server puts "ESMTP" before it itself
    secure: implicitTls,
    secured: implicitTls, // the front door did the handshake
    ...tls,
    size: config.listen.maxMessageSize,
    // The front door keeps each pool to its own limit; this is only a backstop.
    maxClients: config.listen.maxClients + config.listen.maxUnadmittedClients,
    maxRecipients: config.listen.maxRecipients,
    socketTimeout: config.listen.socketTimeoutSeconds * 1000,
    maxCommandLength: config.listen.maxCommandLength,
    maxAllowedUnauthenticatedCommands: false, // counted by CommandWatch (see there why)
    hideREQUIRETLS: true, // we cannot promise TLS on every hop after us
    hideDSN: !deps.queue, // only the queue can honour NOTIFY and RET (RFC 3461 §4); sync mode passes the upstream's reply on
    closeTimeout: CLOSE_TIMEOUT_MS,
    authMethods: ['PLAIN', 'LOGIN'],
    authOptional: true,
    allowInsecureAuth: config.access.allowInsecureAuth,
    disabledCommands: disabled,
    disableReverseLookup: true,
    logger: false,

    onConnect(session, callback) {
      if (!implicitTls) session.disabledCommands = beforeTls;
      logger.debug({ client: session.remoteAddress, tls: implicitTls }, 'connect');
      callback();
    },

    onSecure(socket, session, callback) {
      session.disabledCommands = disabled;
      sessions.get(session.id)?.watch.attach(socket);
      callback();
    },

    onClose(session) {
      const state = sessions.get(session.id);
      sessions.delete(session.id);
      if (sessions.size === 0) lastSessionEnded?.();
      state?.watch.stop();
      clearTimeout(state?.deadline);
      state?.slot.release();
    },

    onAuth: authHandler({
      users,
      authLimiter: deps.authLimiter,
      penaltySeconds: config.listen.authPenaltySeconds,
      logger,
      authenticated(id) {
        const state = sessions.get(id);
        state?.watch.authenticated();
        clearTimeout(state?.deadline);
        state?.slot.promote();
      },
    }),

    ...envelopePolicy({ networks, hasUsers: users.size > 0, senders: deps.senders, logger, dsn: !!deps.queue }),

    onData(stream, session, callback) {
      const envelope = intakeEnvelope(session);
      limitData(stream, sessions.get(session.id)?.watch, config.listen.dataTimeoutSeconds * 1000, () => {
        logger.warn({ client: session.remoteAddress }, 'DATA took too long; closing the connection');
        closeSession(server, session.id);
      });
      stream.on('error', (err) => logger.warn({ err: err.message, client: session.remoteAddress }, 'error reading DATA'));
      receiveAndRelay(deps, session, envelope, stream).then(
        (answer) => (answer.code < 400 ? callback(null, replyText(answer)) : callback(replyError(answer))),
        (err: Error) => {
          logger.error({ err: err.message, client: session.remoteAddress }, 'message handling failed');
          callback(reply(451, '4.3.0 Local error while processing the message, try again later'));
        },
      );
    },
  };
  searchDotsNatively();
  batchPipelinedReplies();
  const server = new SMTPServer(options);
  server.on('error', (err) => logger.error({ err: err.message }, 'listener error'));

  const door = openFrontDoor({
    classify: (address) => (networks.includes(address) ? 'admitted' : canAuth ? 'stranger' : null),
    refusal: (address) => `554 5.7.1 ${address} is not an allowed network and may not relay here`,
    perIp: deps.sessionsPerIp,
    pools: deps.pools,
    tls: implicitTls && tls ? { context: createSecureContext(tls), handshakeTimeoutMs: config.listen.tlsHandshakeTimeoutSeconds * 1000 } : undefined,
    logger,
    handOver(socket, pool, slot) {
      const id = sessionId();
      const close = (code: number, text: string) => {
        const connection = connectionOf(server, id);
        if (connection) sendReply(connection, code, text); // 421 closes the connection
      };
      const watch = new CommandWatch({
        timeoutMs: config.listen.commandTimeoutSeconds * 1000,
        maxCommands: pool === 'stranger' ? config.listen.maxUnauthenticatedCommands : Infinity,
        onTimeout() {
          logger.warn({ client: socket.remoteAddress }, 'command line not completed in time; closing the connection');
          close(421, `4.4.2 Command not completed within ${config.listen.commandTimeoutSeconds} s, closing connection`);
        },
        onTooMany() {
          logger.warn({ client: socket.remoteAddress }, 'too many commands before AUTH; closing the connection');
          close(421, '4.7.0 Too many commands without authentication, closing connection');
        },
      });
      // A stranger has a total time to log in, which no NOOP or RSET extends (the idle timer is reset by every command).
      const deadline =
        pool === 'stranger'
          ? setTimeout(() => {
              logger.warn({ client: socket.remoteAddress }, 'not authenticated within listen.unadmittedTimeoutSeconds; closing the connection');
              if (connectionOf(server, id)) close(421, `4.7.0 Not authenticated within ${config.listen.unadmittedTimeoutSeconds} s, closing connection`);
              else socket.destroy();
            }, config.listen.unadmittedTimeoutSeconds * 1000)
          : undefined;
      sessions.set(id, { pool, watch, slot, deadline });
      watch.attach(socket); // before smtp-server pipes the socket: the 421 then goes out ahead of its reply
      serveSocket(server, socket, id);
      const connection = !implicitTls && tls ? connectionOf(server, id) : undefined;
      if (connection) {
        limitStartTlsHandshake(connection, config.listen.tlsHandshakeTimeoutSeconds * 1000, () =>
          logger.warn({ client: socket.remoteAddress }, 'TLS handshake after STARTTLS not completed in time; closing the connection'),
        );
      }
    },
  });

  return {
    take: door.take,
    hurry: () => server.close(),
    close(callback, letFinish) {
      if (!letFinish) server.close(); // its own server never listened: returns at once
      let doorEmpty = false;
      let finished = false;
      const finish = () => {
        if (finished) return;
        finished = true;
        lastSessionEnded = undefined;
        clearTimeout(force);
        clearTimeout(giveUp);
        callback();
      };
      const closed = () => {
        if (doorEmpty && sessions.size === 0) finish();
      };
      // What is still open after closeTimeout is told 421; should a session's end then go unreported, the stop goes on regardless.
      let giveUp: NodeJS.Timeout | undefined;
      const force = setTimeout(() => {
        closeAllSessions(server, 421, 'Server shutting down');
        giveUp = setTimeout(finish, GIVE_UP_MS);
      }, CLOSE_TIMEOUT_MS);
      force.unref();
      lastSessionEnded = closed;
      door.drained(() => {
        doorEmpty = true;
        closed();
      });
    },
  };
}
