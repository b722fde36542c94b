// `serve`: opens the key store, checks every active key can be read, opens
// and recovers the queue (queue mode) before the listeners accept, starts
// the queue manager and the listeners, and stops them in order on request.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hostname as osHostname } from 'node:os';
import type { LoadedConfig } from '../config/load.ts';
import { durationSeconds } from '../config/duration.ts';
import { loadTls, TlsFileProblem } from '../config/tls-files.ts';
import { createUpstream } from '../delivery/create-upstream.ts';
import { UpstreamHealth, watchedUpstream } from '../delivery/upstream-health.ts';
import { createPublishers } from '../dns/publish/factory.ts';
import { UserError } from '../common/errors.ts';
import { txtRecord, zoneLines } from '../keys/record.ts';
import { openKeyStore } from '../keys/open-store.ts';
import { TOKEN_PROBE_TICK_MS } from '../keys/pkcs11-token.ts';
import type { KeyStore } from '../keys/key-store.ts';
import type { FleetSelf, PgKeyStore } from '../keys/pg-store.ts';
import { fleetStatus, forgottenNodes } from '../observability/fleet-status.ts';
import { startHttp, type HttpListener } from './http.ts';
import { holdSocket, type HeldServer } from './listening-sockets.ts';
import type { Logger } from '../common/logger.ts';
import { rotationAdvice } from '../rotation/policy.ts';
import { publisherFrom, RotationScheduler, type SchedulerOptions } from '../rotation/scheduler.ts';
import { acquireCryptoPool } from '../signing/crypto-pool.ts';
import { metrics } from '../observability/metrics.ts';
import { ReadinessWatch } from '../observability/readiness-watch.ts';
import { ownMailOf } from './own-mail.ts';
import { RelayView } from './relay-view.ts';
import { retryPolicy } from '../queue/backoff.ts';
import { QueueManager } from '../queue/manager.ts';
import { QueueIndex } from '../queue/queue-index.ts';
import { recoverQueue } from '../queue/recovery.ts';
import { makeReclaimable } from '../queue/space-reclaim.ts';
import { Spool } from '../queue/spool.ts';
import { intakeDir, removeStaleIntakeFiles } from '../message/intake.ts';
import { AuthLimiter } from '../access/auth-limiter.ts';
import { wideNetworkAdvice } from '../access/wide-networks.ts';
import { ConnectionPools } from '../relay/connection-pools.ts';
import { CLOSE_TIMEOUT_MS, createListener, type Listener } from '../relay/listener.ts';
import type { RelayDeps } from '../relay/relay-deps.ts';
import { SenderAuthorization } from '../access/sender-authorization.ts';
import { SessionsPerIp } from '../access/sessions-per-ip.ts';
import { Supervisor } from '../common/supervisor.ts';
import { KeptReportStores } from '../reports/kept-report-stores.ts';
import { ReportPoller } from '../reports/poller.ts';

/** This dkim-relay's version, for the fleet's heartbeats. */
const VERSION = (JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'package.json'), 'utf8')) as { version: string }).version;

export interface RunningRelay {
  /** Where the listeners ended up (port 0 in config means "any free port"). */
  ports: { plain: number; tls?: number; metrics?: number };
  store: KeyStore;
  rotation: RotationScheduler;
  /** Each signing domain's SPF and DMARC, looked up at start and at every rotation.check, for the DMARC gauge and the status page. */
  readiness: ReadinessWatch;
  /** Queue mode: the spool, its index and the manager. */
  queue?: { spool: Spool; index: QueueIndex; manager: QueueManager };
  /** Where every background task reports its failures. */
  supervisor: Supervisor;
  /**
   * Stops accepting, lets sessions in flight finish, then closes everything.
   * A reload passes `handover`: the listeners take connections on until it
   * settles (the next relay holds their sockets by then, or failed to start),
   * and their sessions go on until their clients quit.
   */
  stop(handover?: Promise<unknown>): Promise<void>;
  /** After a reload's stop: the sessions still open are told 421 at their next command, as at a stop. */
  hurry(): void;
}

export interface StartOptions {
  /**
   * Run start-up recovery of the queue (default true). A reload in the same
   * process skips it: the previous relay's writes and attempts are still
   * running, and are not the leftovers of a crash.
   */
  recover?: boolean;
  /** How long sessions and delivery attempts in flight may take to finish on stop, in ms. */
  closeTimeoutMs?: number;
  /** Tests: how often the queue manager looks at queue.db for other writers' commits (default 250 ms). */
  queueWatchMs?: number;
  /** Tests give the rotation scheduler their own clock and DNS. */
  rotation?: Pick<SchedulerOptions, 'now' | 'observer' | 'publisher'>;
  /**
   * The background tasks' supervisor: `serve` keeps one for the life of the
   * process, across reloads, recording in queue.dir for `status`. Default: a
   * new one that logs and counts.
   */
  supervisor?: Supervisor;
}

export async function startRelay({ config, path }: LoadedConfig, logger: Logger, options: StartOptions = {}): Promise<RunningRelay> {
  logger.info({ config: path ?? 'embedded default' }, path ? 'configuration loaded' : 'no configuration file: running the embedded demo default');
  // The same notes `config check` prints: settings that work, but probably not as meant.
  for (const advice of [...rotationAdvice(config.rotation), ...wideNetworkAdvice(config.access.networks)]) logger.warn({ advice }, 'configuration note');
  const supervisor = options.supervisor ?? new Supervisor({ logger, metrics });
  const store = await openKeyStore(config.keys, {
    onKeyProblem: ({ domain, selector, problem, line }) =>
      logger.error({ domain, selector, problem }, `signing key unusable, mail from ${domain} is deferred (451): ${line}`),
    // A shared store that does not answer: the relay signs on with the keys it holds (none yet: 451) and the next look tries again.
    onRefreshError: (err) => supervisor.failed('key-store', err),
    onRefreshed: () => supervisor.succeeded('key-store'),
    // The keys' own problem line says which domains wait and how to mend the token; kept here for `status`, since when.
    onTokenChange: (problem) => (problem ? supervisor.failed('key-token', problem, { logged: true }) : supervisor.succeeded('key-token')),
    startUnreachable: true,
    listen: true,
  });
  // Signing and self-check crypto on worker threads, off the event loop.
  const crypto = acquireCryptoPool({ onProblem: (line) => logger.warn(line) });
  // One pool to the report tables for the life of the relay, closed when it stops.
  const reports = new KeptReportStores(store);
  let http: HttpListener | undefined;
  let index: QueueIndex | undefined;
  // What serves each listening port, and the sockets it holds.
  const servers: Listener[] = [];
  const sockets: HeldServer[] = [];
  try {
    // A fresh checkout's keys/ is 0755 but empty: tightening it is no news.
    if (store.exposedKeyFiles > 0) {
      logger.warn({ dir: config.keys.dir, keyFiles: store.exposedKeyFiles }, 'key store directory was readable by others while it held keys; now 0700');
    }
    // `serve` checked the TSIG secret files with the configuration (config/file-check.ts); read again here, before anything listens, as they may have changed since.
    const publisher = options.rotation?.publisher ?? publisherFrom(createPublishers(config.dns.publish));
    const reportPoller = new ReportPoller({ config: config.reports, store, reports, logger, supervisor, onImported: () => metrics.receiversChanged() }); // so is an IMAP password file
    if (config.demo && store.list().length === 0) await createDemoKey(store, config.demo.domain, logger);
    const active = store.checkActiveKeys();
    if (active.length === 0 && !store.list().some((k) => k.state === 'active')) logger.warn('no active keys: every message follows signing.unknownDomain');
    for (const key of active) logger.info({ domain: key.domain, selector: key.selector, algorithm: key.algorithm }, 'signing key active');

    const hostname = config.listen.hostname ?? osHostname();
    // Where the listeners are bound; a port 0 of the configuration is replaced once it is known.
    const listeners = [{ host: config.listen.host, port: config.listen.port }];
    if (config.listen.tlsPort !== undefined) listeners.push({ host: config.listen.host, port: config.listen.tlsPort });
    const direct = createUpstream(config.delivery.upstream, logger, {
      mx: { relay: () => ({ names: [hostname], listeners }) },
      preparation: { store, config, hostname },
      supervisor,
    });
    // A smart host down for longer than the first retry is worth telling the operator (/readyz, the status page, a metric).
    const upstreamHealth =
      config.delivery.upstream.type === 'smtp' ? new UpstreamHealth(direct.name, durationSeconds(config.queue.retryAfter) * 1000) : undefined;
    const upstream = upstreamHealth ? watchedUpstream(direct, upstreamHealth) : direct;
    let queue: RunningRelay['queue'];
    const queueDir = resolve(config.queue.dir);
    if (config.delivery.mode === 'queue') {
      const spool = new Spool(config.queue.dir);
      // onCommit: fresh mail is delivered at once by the newest relay's manager, also when a session a reload let finish took it in.
      index = QueueIndex.open(`${config.queue.dir}/queue.db`, { onCommit: () => delivering.get(queueDir)?.wake() });
      if (options.recover !== false) {
        await recoverQueue(spool, index, logger);
        makeReclaimable(index, logger);
      }
      const policy = retryPolicy(config.queue);
      const manager = new QueueManager({
        spool,
        index,
        upstream,
        logger,
        policy,
        workers: config.delivery.upstream.type === 'file' ? 2 : config.delivery.upstream.maxConnections,
        corruptRetentionMs: durationSeconds(config.queue.corruptRetention) * 1000,
        notices: { config, store, traits: () => upstream.traits, hostname },
        supervisor,
        ...(options.queueWatchMs !== undefined && { watchMs: options.queueWatchMs }),
      });
      queue = { spool, index, manager };
    } else {
      // Sync mode has no recovery; what a crash left behind while receiving goes here. (Queue mode's recovery empties tmp/.)
      const stale = removeStaleIntakeFiles(intakeDir(config.queue.dir));
      if (stale > 0)
        logger.info({ removed: stale, dir: intakeDir(config.queue.dir) }, 'removed messages a stopped relay was still receiving (no client was told 250)');
    }
    const deps: RelayDeps = {
      config,
      store,
      upstream,
      logger,
      hostname,
      tls: config.listen.tls && readTls(config.listen.tls),
      senders: new SenderAuthorization(config.clients),
      sessionsPerIp: new SessionsPerIp(config.listen.maxClientsPerIp),
      pools: new ConnectionPools({
        admitted: config.listen.maxClients,
        stranger: config.listen.maxUnadmittedClients,
        strangerPerIp: config.listen.maxUnadmittedClientsPerIp,
      }),
      authLimiter: new AuthLimiter({
        maxFailures: config.listen.maxAuthFailures,
        penaltyMs: config.listen.authPenaltySeconds * 1000,
        maxFailuresPerMinute: config.listen.maxAuthFailuresPerMinute,
      }),
      queue,
    };
    if (config.access.users.length > 0 && !deps.tls && !config.access.allowInsecureAuth) {
      logger.warn('access.users are configured but TLS is not: AUTH is unavailable until listen.tls is set');
    }
    const view = new RelayView({
      config,
      store,
      reports,
      metrics,
      listening: () => sockets.every((s) => s.listening()),
      background: () => supervisor.health(),
    });
    if (config.metrics.enabled) http = await startHttp(config.metrics, view, logger);
    const serve = async (implicitTls: boolean, port: number): Promise<number> => {
      const listener = createListener(deps, implicitTls);
      servers.push(listener);
      const socket = await listen(listener, config.listen.host, port, logger);
      sockets.push(socket);
      return socket.port;
    };
    const ports: RunningRelay['ports'] = { plain: await serve(false, config.listen.port) };
    if (config.listen.tlsPort !== undefined) ports.tls = await serve(true, config.listen.tlsPort);
    if (http) ports.metrics = http.port;
    listeners.splice(0, listeners.length, ...[ports.plain, ports.tls].filter((p) => p !== undefined).map((port) => ({ host: config.listen.host, port })));
    const unsupervise = metrics.superviseCollection((work) => supervisor.runSync('metrics', work));
    const unwatchKeys = metrics.watchKeys(() => view.snapshot().report);
    const unwatchReceivers = metrics.watchReceivers(() => view.readReceivers());
    const unwatchQueue = queue
      ? metrics.watchQueue(() => {
          const depth = queue.index.depth();
          const space = queue.index.space();
          return {
            messages: depth.messages,
            oldestAgeSeconds: depth.oldestReceivedAt === null ? 0 : Math.max(0, (Date.now() - depth.oldestReceivedAt) / 1000),
            database: { usedBytes: (space.pages - space.free) * space.pageSize, freeBytes: space.free * space.pageSize },
          };
        })
      : () => {};
    const unwatchUpstream = upstreamHealth ? metrics.watchUpstream(() => upstreamHealth.state()) : () => {};
    const unwatchToken = metrics.watchToken(() => store.tokenHealth?.());
    // A token lost or back while no mail is signed is noticed all the same; what a look finds reaches the supervisor through onTokenChange.
    const tokenProbe = store.tokenHealth?.() && setInterval(() => superviseProbe(store, supervisor), TOKEN_PROBE_TICK_MS).unref();
    const unwatchFleet =
      store.engine === 'postgres'
        ? watchFleet(
            store as PgKeyStore,
            { name: hostname, address: `${config.listen.host}:${ports.plain}`, queued: () => queue?.index.oldestBySigner() ?? [] },
            supervisor,
          )
        : () => {};
    view.started();
    if (queue) {
      queue.manager.start();
      delivering.set(queueDir, queue.manager);
    }
    logger.info(
      { host: config.listen.host, ...ports, upstream: deps.upstream.name, mode: config.delivery.mode, spool: queue ? config.queue.dir : undefined },
      'relay listening',
    );
    // Rotation notices go the way of delivery status notifications: the queue in queue mode.
    const mail = ownMailOf({ config, store, hostname }, upstream, queue && { spool: queue.spool, index: queue.index });
    const rotation = new RotationScheduler({
      config,
      store,
      mail,
      hostname: deps.hostname,
      logger,
      queue: queue?.index,
      ...options.rotation,
      publisher,
      supervisor,
    });
    rotation.start();
    const readiness = new ReadinessWatch({ config, store, metrics, logger, supervisor });
    readiness.start();
    reportPoller.start();

    const closeTimeoutMs = options.closeTimeoutMs ?? CLOSE_TIMEOUT_MS;
    return {
      ports,
      store,
      rotation,
      readiness,
      queue,
      supervisor,
      hurry() {
        for (const server of servers) server.hurry();
      },
      async stop(handover) {
        logger.info(
          handover
            ? 'retiring: the new relay takes the listening sockets over; sessions and delivery attempts in flight finish here'
            : 'stopping: no new connections, finishing sessions and delivery attempts in flight',
        );
        view.draining();
        if (queue && delivering.get(queueDir) === queue.manager) delivering.delete(queueDir);
        const closeListeners = async () => {
          await handover?.catch(() => {});
          for (const socket of sockets) void socket.release();
          await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve(), handover !== undefined))));
        };
        // Both within closeTimeout; what has not been delivered by then stays in the spool.
        await Promise.all([rotation.stop(), readiness.stop(), reportPoller.stop(), closeListeners(), queue?.manager.stop(closeTimeoutMs)]);
        await deps.upstream.close();
        await crypto.release();
        unwatchKeys();
        unwatchReceivers();
        unwatchQueue();
        unsupervise();
        unwatchUpstream();
        unwatchFleet();
        unwatchToken();
        clearInterval(tokenProbe);
        await http?.close();
        await reports.close();
        queue?.index.close();
        await store.close();
        // The process goes on after a reload: a plain "stopped" here would read as the relay's end.
        logger.info(handover ? 'retired: the sessions the reload let finish have ended; the new relay serves' : 'stopped');
      },
    };
  } catch (err) {
    for (const socket of sockets) void socket.release();
    for (const server of servers) server.close(() => {}); // a session taken meanwhile is told 421
    await crypto.release();
    await http?.close();
    await reports.close();
    index?.close();
    await store.close();
    throw err;
  }
}

/** A look at the token; should it throw (a bug, or a module misbehaving), the failure is the key-token task's, never the process's end. */
function superviseProbe(store: KeyStore, supervisor: Supervisor): void {
  try {
    store.probeToken?.();
  } catch (err) {
    supervisor.failed('key-token', err);
  }
}

/**
 * The queue manager that delivers from each queue folder: the newest relay's.
 * A reload's new relay takes it over while the old one's sessions finish, and
 * what those sessions commit (through the old relay's index) wakes it at once.
 */
const delivering = new Map<string, QueueManager>();

/** How often a relay deletes the heartbeats of relays long gone (and once at start). */
const FORGET_EVERY_MS = 3600_000;

/** Announces this relay in the fleet's heartbeats, reports the fleet in the metrics, and forgets relays long gone. */
function watchFleet(store: PgKeyStore, self: Omit<FleetSelf, 'version'>, supervisor: Supervisor): () => void {
  store.announce({ ...self, version: VERSION });
  // Run only when there is something to forget: an empty run would report the key store well while it may not answer.
  const forget = () => {
    const stale = forgottenNodes(store.fleet(), new Date());
    if (stale.length > 0) void supervisor.run('key-store', () => store.forgetNodes(stale));
  };
  forget();
  const timer = setInterval(forget, FORGET_EVERY_MS);
  timer.unref();
  const unwatch = metrics.watchFleet(() => {
    const connection = store.connection();
    const since = connection.unreachableSince;
    return {
      fleet: fleetStatus({ nodes: store.fleet(), ...connection, now: new Date() }),
      generation: connection.generation,
      unreachableSeconds: since === null ? 0 : Math.max(0, (Date.now() - Date.parse(since)) / 1000),
    };
  });
  return () => {
    clearInterval(timer);
    unwatch();
  };
}

async function createDemoKey(store: KeyStore, domain: string, logger: Logger): Promise<void> {
  const key = await store.generate({ domain, algorithm: 'rsa', bits: 2048, activate: true });
  logger.info({ domain, selector: key.selector }, 'demo key created and active');
  process.stderr.write(`\nDemo key for ${domain}; its DNS record:\n${zoneLines(txtRecord(key))}\n\n`);
}

/** The schema checked the files already; they are checked again as read, since they may have changed since. */
function readTls(files: { key: string; cert: string }): { key: Buffer; cert: Buffer } {
  try {
    return loadTls(files);
  } catch (err) {
    if (err instanceof TlsFileProblem) throw new UserError(`listen.tls.${err.field}: ${err.message}`, err.hint);
    throw err;
  }
}

/** How often a listener that cannot accept says so: a flood of connections is not a flood of log lines. */
const ACCEPT_FAILURE_LOG_MS = 10_000;

/** Holds the listening socket on host:port for `listener`, taking it over from the relay before on a reload. */
async function listen(listener: Listener, host: string, port: number, logger: Logger): Promise<HeldServer> {
  let loggedAt = -Infinity;
  let failures = 0;
  const failed = (err: NodeJS.ErrnoException) => {
    failures++;
    if (performance.now() - loggedAt < ACCEPT_FAILURE_LOG_MS) return;
    const hint =
      err.code === 'EMFILE' || err.code === 'ENFILE' ? 'out of file descriptors: raise LimitNOFILE (ulimit -n) or lower listen.maxClients' : undefined;
    logger.error({ err: err.message, listen: `${host}:${port}`, failures, hint }, 'could not accept connections; the listener goes on');
    loggedAt = performance.now();
    failures = 0;
  };
  try {
    return await holdSocket(host, port, { take: (socket) => listener.take(socket), failed });
  } catch (err) {
    throw listenProblem(err as NodeJS.ErrnoException, host, port);
  }
}

/** A listen() error on listen.host in the administrator's words; anything else as it is. */
export function listenProblem(err: NodeJS.ErrnoException, host: string, port: number): Error {
  switch (err.code) {
    case 'EADDRINUSE':
      return new UserError(`${host}:${port} is already in use`, 'stop the other process, or set listen.port');
    case 'EACCES':
      return new UserError(`no permission to listen on ${host}:${port}`, 'ports below 1024 need CAP_NET_BIND_SERVICE (see systemd/dkim-relay.service)');
    case 'EADDRNOTAVAIL':
      return new UserError(
        `listen.host ${host}: no such address on this machine`,
        'set one of its addresses (ip -brief address lists them), 0.0.0.0 or :: for all, or 127.0.0.1',
      );
    // A name that getaddrinfo() could not resolve (RFC 3493 §6.1): no such name, or no answer.
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_FAIL':
      return new UserError(`listen.host ${host} does not resolve to an address`, 'set an IP address of this machine, or a name /etc/hosts holds');
    default:
      return err;
  }
}
