// The observability listener (metrics.listen, 127.0.0.1:9125 by default), apart
// from the SMTP ports:
//
//   GET /         the status page (basic auth when metrics.auth is set)
//   GET /metrics  Prometheus text exposition (basic auth when metrics.auth is set)
//   GET /healthz  200 when the relay can take and sign mail, else 503 and which check failed (JSON)
//   GET /readyz   200 once started and until it begins to stop, else 503
//
// /healthz and /readyz never ask for a password: load balancers and service
// managers probe them without one. Without it, /healthz gives each check's
// short reason only; with it (or when metrics.auth is not set) the details.
//
// A configuration reload starts a new relay while the old one drains: the
// new relay takes the open server over and answers for itself, one that
// closes hands it back to the relay before (a reload that failed), and the
// server closes with the last (listening-sockets.ts, as for the SMTP ports).
// The HTTP server itself is held rather than a socket under it, since Node's
// request timeouts only watch a server that listens.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Config } from '../config/schema.ts';
import { UserError } from '../common/errors.ts';
import { AuthLimiter } from '../access/auth-limiter.ts';
import { checkPassword } from '../access/passwords.ts';
import { SessionsPerIp } from '../access/sessions-per-ip.ts';
import { publicHealth, readyAnswer } from '../observability/health.ts';
import { LISTEN_ADDRESS, parseHostPort } from '../common/host-port.ts';
import type { Logger } from '../common/logger.ts';
import type { RelayView } from './relay-view.ts';
import { statusPage } from '../observability/status-page.ts';
import { HeldServers, type Bindable, type HeldServer } from './listening-sockets.ts';

export interface HttpListener {
  port: number;
  /** Lets go: the relay before answers again, or the server closes with the last. */
  close(): Promise<void>;
}

interface Current {
  view: RelayView;
  auth: Config['metrics']['auth'];
}

/** Listeners by address, so that a reload can take them over. */
const servers = new HeldServers<Current>();

/** Credentials that passed scrypt once, by SHA-256 of the header: a scrape every few seconds should not cost 50 ms each. */
const MAX_REMEMBERED = 8;
/** Failed logins per client address, how long they count, and from all addresses together per minute. */
const MAX_AUTH_FAILURES = 10;
const AUTH_PENALTY_MS = 300_000;
const MAX_AUTH_FAILURES_PER_MINUTE = 30;
const REALM = 'Basic realm="dkim-relay", charset="UTF-8"';

export async function startHttp(settings: Config['metrics'], view: RelayView, logger: Logger): Promise<HttpListener> {
  const { host, port } = parseHostPort(settings.listen, LISTEN_ADDRESS)!;
  let created = false;
  let held: HeldServer;
  try {
    held = await servers.hold(host, port, { view, auth: settings.auth }, (current) => {
      created = true;
      return createHttpServer(settings, logger, current);
    });
  } catch (err) {
    throw listenProblem(err as NodeJS.ErrnoException, host, port);
  }
  if (created) logger.info({ listen: `${host.includes(':') ? `[${host}]` : host}:${held.port}`, auth: settings.auth !== undefined }, 'metrics listening');
  return { port: held.port, close: () => held.release() };
}

function createHttpServer(settings: Config['metrics'], logger: Logger, current: () => Current | undefined): Bindable {
  const timeoutMs = settings.requestTimeoutSeconds * 1000;
  const server = createServer({
    // Slow clients are cut off: the whole request (headers included) within the timeout, checked every second
    // (Node checks every 30 s by default, so a slow connection would otherwise be held up to 90 s).
    headersTimeout: timeoutMs,
    requestTimeout: timeoutMs,
    connectionsCheckingInterval: 1000,
    keepAliveTimeout: Math.min(5000, timeoutMs),
  });
  capConnections(server, settings, logger);
  const remembered = new Set<string>();
  const limiter = new AuthLimiter({ maxFailures: MAX_AUTH_FAILURES, penaltyMs: AUTH_PENALTY_MS, maxFailuresPerMinute: MAX_AUTH_FAILURES_PER_MINUTE });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const owner = current();
    if (!owner) return send(res, 503, 'text/plain; charset=utf-8', 'stopping\n');
    respond(req, res, owner, remembered, limiter).catch((err: Error) => {
      logger.error({ err: err.message, path: req.url }, 'metrics listener: request failed');
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.destroy();
    });
  });
  return {
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function respond(req: IncomingMessage, res: ServerResponse, current: Current, remembered: Set<string>, limiter: AuthLimiter): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return send(res, 405, 'text/plain; charset=utf-8', 'only GET and HEAD\n');
  }
  const path = new URL(req.url ?? '/', 'http://relay').pathname;
  const { view } = current;
  if (path === '/readyz') {
    const token = view.metrics.tokenHealth();
    const { status, body } = readyAnswer(view.readiness(), view.metrics.upstreamState(), view.metrics.keyStoreReach(), token && { ...token, now: Date.now() });
    return send(res, status, 'text/plain; charset=utf-8', body);
  }
  if (path === '/healthz') {
    // Probes ask without a password and get the short reasons; paths, domains and selectors only
    // to those who may see the status page (the password, when metrics.auth is set).
    const full = !current.auth || (req.headers.authorization !== undefined && (await authorized(req, res, current.auth, remembered, limiter)));
    if (res.headersSent) return; // refused with 401 or 429
    const health = view.health();
    const shown = full ? health : publicHealth(health);
    return send(res, health.ok ? 200 : 503, 'application/json', `${JSON.stringify({ status: health.ok ? 'ok' : 'fail', ...shown })}\n`);
  }
  if (path !== '/' && path !== '/metrics') return send(res, 404, 'text/plain; charset=utf-8', 'not found: try /, /metrics, /healthz or /readyz\n');

  if (current.auth && !(await authorized(req, res, current.auth, remembered, limiter))) return;
  await view.metrics.refreshReceivers();
  if (path === '/metrics') return send(res, 200, view.metrics.registry.contentType, await view.metrics.text());
  const { report, keys } = view.snapshot();
  const page = statusPage({
    report,
    keys,
    health: view.health(),
    lastHour: view.metrics.recent.totals(60),
    lastDay: view.metrics.recent.totals(24 * 60),
    queue: view.metrics.queueDepth(),
    upstream: view.metrics.upstreamState(),
    refusals: view.metrics.recentRefusals(),
    background: view.background(),
  });
  // Nothing on the page needs a script; if an escaping bug ever let one in, the browser still refuses to run it.
  res.setHeader('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'");
  return send(res, 200, 'text/html; charset=utf-8', page);
}

/**
 * HTTP basic auth (RFC 7617) against the scrypt hash of `dkim-relay passwd`; answers 401 or 429 itself.
 * The check is reserved with the limiter before scrypt runs: one check per client address at a time,
 * and none once its failures (or those of all clients) are used up.
 */
async function authorized(
  req: IncomingMessage,
  res: ServerResponse,
  auth: NonNullable<Current['auth']>,
  remembered: Set<string>,
  limiter: AuthLimiter,
): Promise<boolean> {
  const header = req.headers.authorization ?? '';
  const digest = createHash('sha256').update(`${auth.user}\0${auth.passwordHash}\0${header}`).digest('hex');
  if (remembered.has(digest)) return true;
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!match) {
    // Nothing to check (a browser's first request): no scrypt, nothing counted.
    res.setHeader('WWW-Authenticate', REALM);
    send(res, 401, 'text/plain; charset=utf-8', 'authentication required\n');
    return false;
  }
  const reservation = limiter.reserve(req.socket.remoteAddress ?? '');
  if (!reservation.ok) {
    res.setHeader('Retry-After', String(Math.ceil(reservation.retryMs / 1000)));
    const why = reservation.why === 'busy' ? 'a login from this address is still being checked' : 'too many failed logins';
    send(res, 429, 'text/plain; charset=utf-8', `${why}, try again later\n`);
    return false;
  }
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const user = colon >= 0 ? decoded.slice(0, colon) : '';
  const password = colon >= 0 ? decoded.slice(colon + 1) : '';
  const userOk = sameText(user, auth.user);
  let passwordOk: boolean;
  try {
    // scrypt runs for a wrong user too, so the answer's time does not tell which part was wrong.
    passwordOk = await checkPassword(password, auth.passwordHash);
  } catch (err) {
    reservation.attempt.succeeded(); // nothing was checked: the reserved failure goes back
    throw err;
  }
  if (userOk && passwordOk) {
    reservation.attempt.succeeded();
    if (remembered.size >= MAX_REMEMBERED) remembered.clear();
    remembered.add(digest);
    return true;
  }
  const { delayMs } = reservation.attempt.failed();
  await new Promise((resolve) => setTimeout(resolve, delayMs));
  res.setHeader('WWW-Authenticate', REALM);
  send(res, 401, 'text/plain; charset=utf-8', 'authentication required\n');
  return false;
}

/**
 * metrics.maxConnections in all and metrics.maxConnectionsPerIp from one
 * address: a connection past either is answered 503 and closed before a byte
 * of its request is read.
 */
function capConnections(server: Server, settings: Config['metrics'], logger: Logger): void {
  const perIp = new SessionsPerIp(settings.maxConnectionsPerIp);
  let open = 0;
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? '';
    const release = open < settings.maxConnections ? perIp.admit(address) : null;
    if (!release) {
      logger.warn(
        { client: address },
        open < settings.maxConnections ? 'metrics listener: metrics.maxConnectionsPerIp reached' : 'metrics listener: metrics.maxConnections reached',
      );
      socket.end('HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    open++;
    socket.once('close', () => {
      open--;
      release();
    });
  });
}

function sameText(a: string, b: string): boolean {
  const [x, y] = [createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest()];
  return timingSafeEqual(x, y);
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(body) });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/** A listen() error in the words of metrics.listen. */
function listenProblem(err: NodeJS.ErrnoException, host: string, port: number): Error {
  if (err.code === 'EADDRINUSE')
    return new UserError(`metrics.listen ${host}:${port} is already in use`, 'stop the other process, or set metrics.listen (or metrics.enabled: false)');
  if (err.code === 'EACCES') return new UserError(`no permission to listen on ${host}:${port} (metrics.listen)`, 'choose a port above 1024');
  if (err.code === 'EADDRNOTAVAIL')
    return new UserError(`metrics.listen ${host}:${port}: no such address on this machine`, 'listen on 127.0.0.1, or an address of this machine');
  return err;
}
