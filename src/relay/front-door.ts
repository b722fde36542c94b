// What stands in front of smtp-server for each connection the listening
// socket accepts (the socket itself is held by the daemon, so that a reload
// can pass it on without closing it). It decides, before any SMTP
// or TLS work is done, whether a connection may go on, and hands it over:
// - an address at its listen.maxClientsPerIp limit is turned away;
// - a client outside access.networks that cannot authenticate is refused
//   with 554 5.7.1 at once;
// - admitted clients and strangers that may still AUTH fill separate pools
//   (connection-pools.ts), shared by every listener, so strangers can never
//   take the slots of admitted clients, nor one stranger address all of theirs;
// - on the implicit-TLS port the handshake is done here, counted against the
//   per-IP limit and the pool, and cut off after listen.tlsHandshakeTimeoutSeconds.
// smtp-server cannot do this itself: its maxClients is one pool checked only
// once a session starts (after the TLS handshake), sockets still in the
// handshake are capped only by that global maxClients, and its handshake
// deadline is socketTimeout, the idle timeout of whole sessions.
import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import type { Logger } from '../common/logger.ts';
import type { ConnectionPools, Pool, Slot } from './connection-pools.ts';
import type { SessionsPerIp } from '../access/sessions-per-ip.ts';

export interface FrontDoorOptions {
  /** Where a client belongs, or null when it is refused outright. */
  classify(address: string): Pool | null;
  /** The reply line (without CRLF) for a client classify() refused. */
  refusal(address: string): string;
  perIp: SessionsPerIp;
  pools: ConnectionPools;
  /** Implicit TLS: the context and how long the handshake may take. */
  tls?: { context: SecureContext; handshakeTimeoutMs: number };
  logger: Logger;
  /** Takes over a connection that passed, with the slot it holds. */
  handOver(socket: Socket, pool: Pool, slot: Slot): void;
}

export interface FrontDoor {
  /** A connection the listening socket accepted. */
  take(socket: Socket): void;
  /** Calls back once no connection it took is left in it: each has closed or was handed over. */
  drained(callback: () => void): void;
}

/** How long a refused client gets to read the reply before the socket is destroyed. */
const LINGER_MS = 1000;

export function openFrontDoor(options: FrontDoorOptions): FrontDoor {
  const { logger } = options;
  let inside = 0;
  let whenDrained: (() => void) | undefined;

  const turnAway = (socket: Socket, line: string) => {
    if (options.tls) return socket.destroy(); // nothing can be said before the handshake
    socket.end(`${line}\r\n`);
    setTimeout(() => socket.destroy(), LINGER_MS).unref();
  };

  const take = (socket: Socket) => {
    // Counted until it closes or is handed over (whose sessions the listener counts: smtp-server takes the socket's listeners away at STARTTLS).
    inside++;
    let counted = true;
    const leave = () => {
      if (!counted) return;
      counted = false;
      inside--;
      if (inside === 0) whenDrained?.();
    };
    socket.once('close', leave);
    socket.on('error', () => {}); // a reset by the client is no concern of the listener
    const address = socket.remoteAddress ?? '';
    const pool = options.classify(address);
    if (!pool) {
      logger.warn({ client: address }, 'connection refused: not in access.networks and cannot authenticate');
      return turnAway(socket, options.refusal(address));
    }
    const releaseIp = options.perIp.admit(address);
    if (!releaseIp) {
      logger.warn({ client: address }, 'too many sessions from one address');
      return turnAway(socket, `421 4.7.0 Too many connections from ${address}, try again later`);
    }
    const taken = options.pools.take(address, pool);
    if (!taken.ok) {
      releaseIp();
      if (taken.why === 'address') {
        logger.warn({ client: address }, 'listen.maxUnadmittedClientsPerIp reached');
        return turnAway(socket, `421 4.7.0 Too many unauthenticated connections from ${address}, try again later`);
      }
      logger.warn({ client: address, pool }, pool === 'admitted' ? 'listen.maxClients reached' : 'listen.maxUnadmittedClients reached');
      return turnAway(socket, '421 4.7.0 Too many connected clients, try again in a moment');
    }
    const slot: Slot = {
      release() {
        taken.slot.release();
        releaseIp();
      },
      promote: () => taken.slot.promote(),
    };
    socket.once('close', () => slot.release());
    if (!options.tls) {
      leave();
      return options.handOver(socket, pool, slot);
    }

    const secure = new TLSSocket(socket, { isServer: true, secureContext: options.tls.context });
    secure.on('error', () => secure.destroy());
    // new TLSSocket() does not honour handshakeTimeout (only tls.Server does): armed by hand, on the
    // TLS socket, since tearing the raw socket down under a handshake in progress is not safe.
    secure.setTimeout(options.tls.handshakeTimeoutMs, () => {
      logger.debug({ client: address }, 'TLS handshake timed out');
      secure.destroy();
    });
    secure.once('secure', () => {
      secure.setTimeout(0);
      secure.removeAllListeners('timeout');
      leave();
      options.handOver(secure, pool, slot);
    });
  };

  return {
    take,
    drained(callback) {
      if (inside === 0) return callback();
      whenDrained = () => {
        whenDrained = undefined;
        callback();
      };
    },
  };
}
