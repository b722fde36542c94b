// The observability listener (metrics.listen, 127.0.0.1:9125 by default), apart
// from the SMTP ports:
//
//   GET /         the status page (basic auth when metrics.auth is set)
//   GET /metrics  Prometheus text exposition (basic auth when metrics.auth is set)
//   GET /healthz  200 when the relay can take and sign mail, else 503 and which check failed (JSON)
//   GET /readyz   200 once started and until it begins to stop, else 503
//
// /healthz and /readyz never ask for a password: load balancers and service
// managers probe them without one.
//
// A configuration reload starts a new relay while the old one drains: a new
// listener on the same fixed address takes the open socket over (binding it
// twice would fail), and the old relay's close() then leaves it alone.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from '../config/schema.ts';
import { UserError } from '../errors.ts';
import { AuthLimiter } from '../relay/auth-limiter.ts';
import { checkPassword } from '../relay/passwords.ts';
import { readyAnswer } from './health.ts';
import { parseListenAddress } from './listen-address.ts';
import type { Logger } from './logger.ts';
import type { RelayView } from './relay-view.ts';
import { statusPage } from './status-page.ts';

export interface HttpListener {
  port: number;
  /** Closes the socket, unless a newer relay took it over. */
  close(): Promise<void>;
}

interface Current {
  view: RelayView;
  auth: Config['metrics']['auth'];
  owner: object;
}

interface Open {
  server: Server;
  current: Current;
  address: string;
}

/** Listeners on a fixed address, by "host:port", so that a reload can take them over. */
const byAddress = new Map<string, Open>();

/** Credentials that passed scrypt once, by SHA-256 of the header: a scrape every few seconds should not cost 50 ms each. */
const MAX_REMEMBERED = 8;
const REALM = 'Basic realm="dkim-relay", charset="UTF-8"';

export async function startHttp(settings: Config['metrics'], view: RelayView, logger: Logger): Promise<HttpListener> {
  const { host, port } = parseListenAddress(settings.listen)!;
  const owner = {};
  const current: Current = { view, auth: settings.auth, owner };
  const address = `${host}:${port}`;
  const taken = port !== 0 ? byAddress.get(address) : undefined;
  if (taken) {
    taken.current = current;
    return { port, close: () => closeIfOwner(taken, owner) };
  }

  const open: Open = { server: createServer(), current, address };
  const remembered = new Set<string>();
  const limiter = new AuthLimiter({ maxFailures: 10, penaltyMs: 300_000 });
  open.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    respond(req, res, open.current, remembered, limiter).catch((err: Error) => {
      logger.error({ err: err.message, path: req.url }, 'metrics listener: request failed');
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.destroy();
    });
  });
  const bound = await listen(open.server, host, port);
  if (port !== 0) byAddress.set(address, open);
  logger.info({ listen: `${host.includes(':') ? `[${host}]` : host}:${bound}`, auth: settings.auth !== undefined }, 'metrics listening');
  return { port: bound, close: () => closeIfOwner(open, owner) };
}

async function closeIfOwner(open: Open, owner: object): Promise<void> {
  if (open.current.owner !== owner) return;
  if (byAddress.get(open.address) === open) byAddress.delete(open.address);
  await new Promise<void>((resolve) => {
    open.server.close(() => resolve());
    open.server.closeAllConnections();
  });
}

async function respond(req: IncomingMessage, res: ServerResponse, current: Current, remembered: Set<string>, limiter: AuthLimiter): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return send(res, 405, 'text/plain; charset=utf-8', 'only GET and HEAD\n');
  }
  const path = new URL(req.url ?? '/', 'http://relay').pathname;
  const { view } = current;
  if (path === '/readyz') {
    const { status, body } = readyAnswer(view.readiness(), view.metrics.upstreamState());
    return send(res, status, 'text/plain; charset=utf-8', body);
  }
  if (path === '/healthz') {
    const health = view.health();
    return send(res, health.ok ? 200 : 503, 'application/json', `${JSON.stringify({ status: health.ok ? 'ok' : 'fail', ...health })}\n`);
  }
  if (path !== '/' && path !== '/metrics') return send(res, 404, 'text/plain; charset=utf-8', 'not found: try /, /metrics, /healthz or /readyz\n');

  if (current.auth && !(await authorized(req, res, current.auth, remembered, limiter))) return;
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
  });
  // Nothing on the page needs a script; if an escaping bug ever let one in, the browser still refuses to run it.
  res.setHeader('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'");
  return send(res, 200, 'text/html; charset=utf-8', page);
}

/** HTTP basic auth (RFC 7617) against the scrypt hash of `dkim-relay passwd`; answers 401 or 429 itself. */
async function authorized(req: IncomingMessage, res: ServerResponse, auth: NonNullable<Current['auth']>, remembered: Set<string>, limiter: AuthLimiter): Promise<boolean> {
  const client = req.socket.remoteAddress ?? '';
  const refusedFor = limiter.refusedFor(client);
  if (refusedFor > 0) {
    res.setHeader('Retry-After', String(Math.ceil(refusedFor / 1000)));
    send(res, 429, 'text/plain; charset=utf-8', 'too many failed logins, try again later\n');
    return false;
  }
  const header = req.headers.authorization ?? '';
  const digest = createHash('sha256').update(`${auth.user}\0${auth.passwordHash}\0${header}`).digest('hex');
  if (remembered.has(digest)) return true;
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  const decoded = match ? Buffer.from(match[1]!, 'base64').toString('utf8') : '';
  const colon = decoded.indexOf(':');
  const user = colon >= 0 ? decoded.slice(0, colon) : '';
  const password = colon >= 0 ? decoded.slice(colon + 1) : '';
  const userOk = sameText(user, auth.user);
  // scrypt runs for a wrong user too, so the answer's time does not tell which part was wrong.
  const passwordOk = match !== null && (await checkPassword(password, auth.passwordHash));
  if (match && userOk && passwordOk) {
    if (remembered.size >= MAX_REMEMBERED) remembered.clear();
    remembered.add(digest);
    return true;
  }
  const delayMs = match ? limiter.fail(client).delayMs : 0;
  await new Promise((resolve) => setTimeout(resolve, delayMs));
  res.setHeader('WWW-Authenticate', REALM);
  send(res, 401, 'text/plain; charset=utf-8', 'authentication required\n');
  return false;
}

function sameText(a: string, b: string): boolean {
  const [x, y] = [createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest()];
  return timingSafeEqual(x, y);
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(body) });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') reject(new UserError(`metrics.listen ${host}:${port} is already in use`, 'stop the other process, or set metrics.listen (or metrics.enabled: false)'));
      else if (err.code === 'EACCES') reject(new UserError(`no permission to listen on ${host}:${port} (metrics.listen)`, 'choose a port above 1024'));
      else if (err.code === 'EADDRNOTAVAIL') reject(new UserError(`metrics.listen ${host}:${port}: no such address on this machine`, 'listen on 127.0.0.1, or an address of this machine'));
      else reject(err);
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
