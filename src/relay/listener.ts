// The SMTP listener: smtp-server with admission (networks, AUTH), limits, and
// a DATA handler that hands each message to the pipeline and then delivers it.
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import type { Config } from '../config/schema.ts';
import type { Envelope, Upstream } from '../delivery/upstream.ts';
import type { KeyStore } from '../keys/store.ts';
import type { Logger } from '../observability/logger.ts';
import { NetworkList } from './admission.ts';
import { checkPassword } from './passwords.ts';
import { relayMessage } from './relay-message.ts';
import type { SenderAuthorization } from './sender-authorization.ts';
import type { SessionsPerIp } from './sessions-per-ip.ts';

export interface RelayDeps {
  config: Config;
  store: KeyStore;
  upstream: Upstream;
  logger: Logger;
  hostname: string;
  tls?: { key: Buffer; cert: Buffer };
  senders: SenderAuthorization;
  sessionsPerIp: SessionsPerIp;
}

/** MAIL FROM parameters we honour (AUTH=: RFC 4954 §5); smtp-server passes unknown ones through silently. */
const MAIL_PARAMETERS = new Set(['SIZE', 'BODY', 'SMTPUTF8', 'AUTH']);

/** An SMTP reply that smtp-server sends as "<code> <text>". */
function reply(code: number, text: string): Error {
  // RFC 5321 §4.5.3.1.5: reply text is printable ASCII; whatever we quote from a message is made so.
  const ascii = text.replace(/[^\x20-\x7e]/g, '?');
  return Object.assign(new Error(ascii.length > 450 ? `${ascii.slice(0, 447)}...` : ascii), { responseCode: code });
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

export function createListener(deps: RelayDeps, implicitTls: boolean): SMTPServer {
  const { config, logger } = deps;
  const networks = new NetworkList(config.access.networks);
  const users = new Map(config.access.users.map((u) => [u.name, u.password]));
  const disabled: string[] = [];
  if (!deps.tls) disabled.push('STARTTLS'); // never fall back to smtp-server's public test certificate
  if (users.size === 0) disabled.push('AUTH');

  const options: SMTPServerOptions = {
    name: deps.hostname,
    banner: 'dkim-relay', // smtp-server puts "ESMTP" before it itself
    secure: implicitTls,
    key: deps.tls?.key,
    cert: deps.tls?.cert,
    size: config.listen.maxMessageSize,
    maxClients: config.listen.maxClients,
    maxRecipients: config.listen.maxRecipients,
    socketTimeout: config.listen.socketTimeoutSeconds * 1000,
    maxCommandLength: config.listen.maxCommandLength,
    maxAllowedUnauthenticatedCommands: users.size > 0 ? config.listen.maxUnauthenticatedCommands : false,
    hideREQUIRETLS: true, // we cannot promise TLS on every hop after us
    closeTimeout: 30_000,
    authMethods: ['PLAIN', 'LOGIN'],
    authOptional: true,
    allowInsecureAuth: config.access.allowInsecureAuth,
    disabledCommands: disabled,
    disableReverseLookup: true,
    logger: false,

    onConnect(session, callback) {
      if (!deps.sessionsPerIp.admit(session)) {
        logger.warn({ client: session.remoteAddress }, 'too many sessions from one address');
        return callback(reply(421, `4.7.0 Too many connections from ${session.remoteAddress}, try again later`));
      }
      logger.debug({ client: session.remoteAddress, tls: implicitTls }, 'connect');
      callback();
    },

    onClose(session) {
      deps.sessionsPerIp.release(session);
    },

    onAuth(auth, session, callback) {
      const stored = users.get(auth.username ?? '');
      const attempt = stored ? checkPassword(auth.password ?? '', stored) : Promise.resolve(false);
      attempt.then(
        (ok) => {
          logger.info({ client: session.remoteAddress, user: auth.username, ok }, 'auth');
          if (ok) callback(null, { user: auth.username });
          else callback(reply(535, '5.7.8 Authentication credentials invalid'));
        },
        (err: Error) => callback(reply(454, `4.7.0 Temporary authentication failure: ${err.message}`)),
      );
    },

    onMailFrom(address, session, callback) {
      const unknown = Object.keys(address.args || {}).find((name) => !MAIL_PARAMETERS.has(name.toUpperCase()));
      if (unknown) return later(callback, reply(555, `5.5.4 MAIL FROM parameter ${unknown} is not supported`));
      if (address.address.includes(UNDECODABLE)) return later(callback, reply(553, '5.1.7 The sender address is not valid UTF-8'));
      if (session.user || networks.includes(session.remoteAddress)) return later(callback);
      logger.warn({ client: session.remoteAddress, from: address.address }, 'relay refused');
      if (users.size > 0) return later(callback, reply(530, '5.7.0 Authentication required'));
      later(callback, reply(550, `5.7.1 Relaying denied: ${session.remoteAddress} is not an allowed network`));
    },

    onRcptTo(address, _session, callback) {
      const unknown = Object.keys(address.args || {})[0];
      if (unknown) return later(callback, reply(555, `5.5.4 RCPT TO parameter ${unknown} is not supported`));
      if (address.address.includes(UNDECODABLE)) return later(callback, reply(553, '5.1.3 The recipient address is not valid UTF-8'));
      later(callback);
    },

    onData(stream, session, callback) {
      // Taken now, not at 'end': a client that pipelines the next transaction
      // right after the final dot changes session.envelope before 'end' is seen.
      const envelope: Envelope = {
        from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
        to: session.envelope.rcptTo.map((r) => r.address),
      };
      // A sender that trickles its DATA is cut off, so it cannot hold a session forever.
      const deadline = setTimeout(() => {
        logger.warn({ client: session.remoteAddress }, 'DATA took too long; closing the connection');
        for (const connection of server.connections) if (connection.session?.id === session.id) connection.close();
      }, config.listen.dataTimeoutSeconds * 1000);
      stream.once('end', () => clearTimeout(deadline));
      stream.once('error', () => clearTimeout(deadline));
      stream.once('close', () => clearTimeout(deadline));
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        // Past the limit the rest is read and dropped: the answer will be 552 anyway.
        if (size <= config.listen.maxMessageSize) chunks.push(chunk);
      });
      stream.on('error', (err) => callback(reply(451, `4.3.0 Error reading message: ${err.message}`)));
      stream.on('end', () => {
        if ((stream as { sizeExceeded?: boolean }).sizeExceeded || size > config.listen.maxMessageSize) {
          return callback(reply(552, `5.3.4 Message exceeds the maximum size of ${config.listen.maxMessageSize} octets`));
        }
        relayMessage(deps, session, envelope, Buffer.concat(chunks)).then(
          (answer) => (answer.code < 400 ? callback(null, answer.text) : callback(reply(answer.code, answer.text))),
          (err: Error) => {
            logger.error({ err: err.message, client: session.remoteAddress }, 'message handling failed');
            callback(reply(451, '4.3.0 Local error while processing the message, try again later'));
          },
        );
      });
    },
  };
  const server = new SMTPServer(options);
  server.on('error', (err) => logger.error({ err: err.message }, 'listener error'));
  return server;
}
