// What a listener and the messages it relays work with, built by the daemon.
import type { Config } from '../config/schema.ts';
import type { Upstream } from '../delivery/upstream.ts';
import type { KeyStore } from '../keys/key-store.ts';
import type { Logger } from '../common/logger.ts';
import type { AuthLimiter } from '../access/auth-limiter.ts';
import type { ConnectionPools } from './connection-pools.ts';
import type { QueueIndex } from '../queue/queue-index.ts';
import type { Spool } from '../queue/spool.ts';
import type { SenderAuthorization } from '../access/sender-authorization.ts';
import type { SessionsPerIp } from '../access/sessions-per-ip.ts';

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
