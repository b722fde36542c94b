// The SMTP listener: a front door (admission, slots, implicit TLS) and
// smtp-server behind it with AUTH, limits, and a DATA handler that hands
// each message to the pipeline and then delivers it.
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:net';
import { createSecureContext } from 'node:tls';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import type { Config } from '../config/schema.ts';
import type { Upstream } from '../delivery/upstream.ts';
import type { KeyStore } from '../keys/store.ts';
import type { Logger } from '../common/logger.ts';
import { NetworkList } from '../common/networks.ts';
import type { AuthLimiter } from '../access/auth-limiter.ts';
import { CommandWatch } from './command-watch.ts';
import type { ConnectionPools, Pool, Slot } from './connection-pools.ts';
import { openFrontDoor } from './front-door.ts';
import { checkUser } from '../access/passwords.ts';
import { limitStartTlsHandshake } from './starttls-deadline.ts';
import type { QueueIndex } from '../queue/queue-index.ts';
import type { Spool } from '../queue/spool.ts';
import { replyError, replyText, smtpReply } from '../smtp/reply.ts';
import { dsnProblem } from './dsn-parameters.ts';
import { receiveAndRelay, type IntakeEnvelope } from './relay-message.ts';
import type { SenderAuthorization } from '../access/sender-authorization.ts';
import type { SessionsPerIp } from '../access/sessions-per-ip.ts';
import { DEFAULT_CIPHERS, DEFAULT_MIN_VERSION } from './tls-policy.ts';

export interface RelayDeps {
  config: Config;
  store: KeyStore;
  upstream: Upstream;
  logger: Logger;
  hostname: string;
  tls?: { key: Buffer; cert: Buffer };
  senders: SenderAuthorization;
  sessionsPerIp: SessionsPerIp;
  pools: ConnectionPools;
  authLimiter: AuthLimiter;
  /** Queue mode: where accepted messages go before 250. Absent: sync mode. */
  queue?: { spool: Spool; index: QueueIndex } | undefined;
}

/** One listening port: the front door and the smtp-server behind it. */
export interface Listener {
  server: Server;
  /** Stops accepting; sessions in flight get closeTimeout to finish, then 421. */
  close(callback: () => void): void;
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

/** A session id as smtp-server makes them (16 base-32 characters). */
function sessionId(): string {
  return BigInt(`0x${randomBytes(10).toString('hex')}`).toString(32).padStart(16, '0');
}

/** MAIL FROM parameters we honour (AUTH=: RFC 4954 §5); smtp-server passes unknown ones through silently. */
const MAIL_PARAMETERS = new Set(['SIZE', 'BODY', 'SMTPUTF8', 'AUTH']);
/** RFC 3461 parameters, honoured in queue mode, where the relay itself may have to report on delivery. */
const DSN_MAIL_PARAMETERS = ['RET', 'ENVID'];
const DSN_RCPT_PARAMETERS = new Set(['NOTIFY', 'ORCPT']);

/** An SMTP reply that smtp-server sends as "<code> <text>"; `text` may begin with the enhanced code. */
function reply(code: number, text: string): Error {
  return replyError(smtpReply(code, text));
}

/**
 * smtp-server loses a pipelined second transaction when a handler answers
 * synchronously (SMTPStream.continue() clears the continuation after calling
 * it); answering on the next turn of the event loop avoids that.
 */
function later(callback: (err?: Error | null) => void, err?: Error): void {
  setImmediate(() => callback(err));
}

/** smtp-server decodes command lines as UTF-8; octets that are not UTF-8 become U+FFFD. */
const UNDECODABLE = '\ufffd';

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
  let overallWarnedAt = 0;
  const mailParameters = deps.queue ? new Set([...MAIL_PARAMETERS, ...DSN_MAIL_PARAMETERS]) : MAIL_PARAMETERS;
  const connectionOf = (id: string) => [...server.connections].find((c) => c.id === id);

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
      state?.watch.stop();
      clearTimeout(state?.deadline);
      state?.slot.release();
    },

    onAuth(auth, session, callback) {
      const client = session.remoteAddress;
      // Reserved before scrypt runs, so parallel tries from one client gain nothing (RFC 4954 §6: 454 is temporary).
      const reservation = deps.authLimiter.reserve(client);
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
            const state = sessions.get(session.id);
            state?.watch.authenticated();
            clearTimeout(state?.deadline);
            state?.slot.promote();
            return callback(null, { user: auth.username });
          }
          const failure = attempt.failed();
          // One warning per client and window: a password-guessing run must not flood the log.
          if (failure.first) logger.warn({ client, user: auth.username }, 'AUTH failed; further failures from this client within listen.authPenaltySeconds are not logged');
          if (failure.blocked) {
            // Once per client and window: until the window ends its logins are refused before any check.
            logger.warn({ client, seconds: deps.config.listen.authPenaltySeconds }, 'AUTH: client shut out after listen.maxAuthFailures failed logins; its logins are refused until the window ends');
            return callback(reply(421, `4.7.0 Too many failed logins from ${client}, try again later`));
          }
          setTimeout(() => callback(reply(535, '5.7.8 Authentication credentials invalid')), failure.delayMs);
        },
        (err: Error) => {
          attempt.succeeded(); // nothing was checked: the reserved failure goes back
          callback(reply(454, `4.7.0 Temporary authentication failure: ${err.message}`));
        },
      );
    },

    onMailFrom(address, session, callback) {
      const unknown = Object.keys(address.args || {}).find((name) => !mailParameters.has(name.toUpperCase()));
      if (unknown) return later(callback, reply(555, `5.5.4 MAIL FROM parameter ${unknown} is not supported`));
      const badDsn = deps.queue && dsnProblem(address.args || {});
      if (badDsn) return later(callback, reply(501, `5.5.4 ${badDsn}`));
      if (address.address.includes(UNDECODABLE)) return later(callback, reply(553, '5.1.7 The sender address is not valid UTF-8'));
      if (session.user || networks.includes(session.remoteAddress)) {
        const refusal = deps.senders.envelopeRefusal({ address: session.remoteAddress, user: session.user as string | undefined }, address.address);
        if (refusal) logger.warn({ client: session.remoteAddress, user: session.user, from: address.address }, 'envelope sender refused: not in the client\'s clients[].domains');
        return later(callback, refusal ? reply(550, `5.7.1 ${refusal}`) : undefined);
      }
      logger.warn({ client: session.remoteAddress, from: address.address }, 'relay refused');
      if (users.size > 0) return later(callback, reply(530, '5.7.0 Authentication required'));
      later(callback, reply(550, `5.7.1 Relaying denied: ${session.remoteAddress} is not an allowed network`));
    },

    onRcptTo(address, _session, callback) {
      const unknown = Object.keys(address.args || {}).find((name) => !(deps.queue && DSN_RCPT_PARAMETERS.has(name.toUpperCase())));
      if (unknown) return later(callback, reply(555, `5.5.4 RCPT TO parameter ${unknown} is not supported`));
      const badDsn = deps.queue && dsnProblem(address.args || {});
      if (badDsn) return later(callback, reply(501, `5.5.4 ${badDsn}`));
      if (address.address.includes(UNDECODABLE)) return later(callback, reply(553, '5.1.3 The recipient address is not valid UTF-8'));
      later(callback);
    },

    onData(stream, session, callback) {
      // Taken now, not at 'end': a client that pipelines the next transaction
      // right after the final dot changes session.envelope before 'end' is seen.
      const dsn = (session.envelope as { dsn?: { ret?: string | null; envid?: string | null } }).dsn;
      const envelope: IntakeEnvelope = {
        from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
        to: session.envelope.rcptTo.map((r) => r.address),
        ret: dsn?.ret === 'FULL' || dsn?.ret === 'HDRS' ? dsn.ret : undefined,
        envid: dsn?.envid ?? undefined,
        recipients: session.envelope.rcptTo.map((r) => {
          const given = (r as { dsn?: { notify?: string[]; orcpt?: string } }).dsn;
          return { address: r.address, notify: given?.notify, orcpt: given?.orcpt };
        }),
      };
      // A sender that trickles its DATA is cut off, so it cannot hold a session forever.
      const watch = sessions.get(session.id)?.watch;
      watch?.pause();
      for (const event of ['end', 'close', 'error']) stream.once(event, () => watch?.resume());
      const deadline = setTimeout(() => {
        logger.warn({ client: session.remoteAddress }, 'DATA took too long; closing the connection');
        for (const connection of server.connections) if (connection.session?.id === session.id) connection.close();
      }, config.listen.dataTimeoutSeconds * 1000);
      stream.once('end', () => clearTimeout(deadline));
      stream.once('error', () => clearTimeout(deadline));
      stream.once('close', () => clearTimeout(deadline));
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
      const close = (code: number, text: string) => connectionOf(id)?.send(code, text); // 421 closes the connection
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
      const deadline = pool === 'stranger' ? setTimeout(() => {
        logger.warn({ client: socket.remoteAddress }, 'not authenticated within listen.unadmittedTimeoutSeconds; closing the connection');
        if (connectionOf(id)) close(421, `4.7.0 Not authenticated within ${config.listen.unadmittedTimeoutSeconds} s, closing connection`);
        else socket.destroy();
      }, config.listen.unadmittedTimeoutSeconds * 1000) : undefined;
      sessions.set(id, { pool, watch, slot, deadline });
      watch.attach(socket); // before smtp-server pipes the socket: the 421 then goes out ahead of its reply
      server.connect(socket, { id });
      const connection = !implicitTls && tls ? connectionOf(id) : undefined;
      if (connection) {
        limitStartTlsHandshake(connection, config.listen.tlsHandshakeTimeoutSeconds * 1000, () =>
          logger.warn({ client: socket.remoteAddress }, 'TLS handshake after STARTTLS not completed in time; closing the connection'),
        );
      }
    },
  });

  return {
    server: door,
    close(callback) {
      door.close(() => {
        clearTimeout(force);
        callback();
      });
      server.close(); // commands from now on are answered 421 (its own server never listened: returns at once)
      const force = setTimeout(() => {
        for (const connection of server.connections) {
          connection.send(421, 'Server shutting down');
          connection.close();
        }
      }, CLOSE_TIMEOUT_MS);
      force.unref();
    },
  };
}
