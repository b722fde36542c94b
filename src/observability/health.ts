// /healthz and /readyz as pure decisions: the facts are gathered elsewhere
// (relay-view.ts), the answers are decided here.
//
// Healthy means the relay can take and sign mail now: its SMTP listeners
// accept, the spool (when there is one) takes files, the key store opens, and
// every signing domain has an active key whose file loads. Ready means a load
// balancer may send it new connections: started, and not stopping.

import { failingFor, type UpstreamState } from '../delivery/upstream-health.ts';
import type { TokenHealth } from '../keys/pkcs11-token.ts';

export type CheckName = 'listener' | 'spool' | 'key-store' | 'signing-keys';

export interface HealthFacts {
  /** Every SMTP listener is accepting connections. */
  listening: boolean;
  /**
   * queue.dir: absent (no queue yet), or whether data could be written to a
   * file in it, and the space left on its file system against the space one
   * message may need.
   */
  spool:
    | { exists: false }
    | { exists: true; writable: true; freeBytes: number; neededBytes: number }
    | { exists: true; writable: false; code: string; error: string };
  /** A shared store that does not answer but whose keys this relay holds is ok, with a note saying since when. */
  keyStore: { ok: true; note?: string } | { ok: false; error: string };
  /** Each signing domain: its active keys that load, and the problem of one that does not. */
  domains: readonly { domain: string; usableKeys: number; problem?: string }[];
}

export interface HealthCheck {
  name: CheckName;
  ok: boolean;
  /** A short reason for anyone who may ask: no file path, domain or selector. */
  reason: string;
  /** The full account (paths, domains, selectors), for those allowed to see the status page. */
  detail: string;
}

export interface Health {
  ok: boolean;
  /** The names of the checks that failed, for a quick look. */
  failed: CheckName[];
  checks: HealthCheck[];
}

export function decideHealth(facts: HealthFacts): Health {
  const listening = facts.listening ? 'accepting SMTP connections' : 'the SMTP listener is not accepting connections';
  const checks: HealthCheck[] = [
    { name: 'listener', ok: facts.listening, reason: listening, detail: listening },
    spoolCheck(facts.spool),
    facts.keyStore.ok
      ? { name: 'key-store', ok: true, reason: facts.keyStore.note ?? 'opens', detail: facts.keyStore.note ?? 'opens' }
      : { name: 'key-store', ok: false, reason: 'does not open', detail: facts.keyStore.error },
    keysCheck(facts),
  ];
  const failed = checks.filter((c) => !c.ok).map((c) => c.name);
  return { ok: failed.length === 0, failed, checks };
}

function spoolCheck(spool: HealthFacts['spool']): HealthCheck {
  if (!spool.exists) return { name: 'spool', ok: true, reason: 'no spool directory (nothing is queued)', detail: 'no spool directory (nothing is queued)' };
  if (!spool.writable) return { name: 'spool', ok: false, reason: `not writable (${spool.code})`, detail: spool.error };
  // A spool that cannot take one message of the largest size is as good as full: such a message is refused 452.
  if (spool.freeBytes < spool.neededBytes) {
    const reason = `its disk is full: ${mebibytes(spool.freeBytes)} free, less than one message of listen.maxMessageSize (${mebibytes(spool.neededBytes)})`;
    return { name: 'spool', ok: false, reason, detail: reason };
  }
  return { name: 'spool', ok: true, reason: 'writable', detail: `writable, ${mebibytes(spool.freeBytes)} free` };
}

const mebibytes = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;

function keysCheck(facts: HealthFacts): HealthCheck {
  // Without a key store, the keys cannot be judged: the key-store check says why.
  if (!facts.keyStore.ok)
    return { name: 'signing-keys', ok: false, reason: 'unknown: the key store does not open', detail: 'unknown: the key store does not open' };
  const problems = facts.domains.flatMap((d) => {
    if (d.problem !== undefined) return [d.problem];
    return d.usableKeys === 0 ? [`${d.domain} has no active key`] : [];
  });
  const domains = (n: number) => `${n} signing domain${n === 1 ? '' : 's'}`;
  if (problems.length > 0)
    return { name: 'signing-keys', ok: false, reason: `${domains(problems.length)} of ${facts.domains.length} cannot sign`, detail: problems.join('; ') };
  const fine = `${domains(facts.domains.length)}, each with an active key that loads`;
  return { name: 'signing-keys', ok: true, reason: fine, detail: fine };
}

/** What /healthz shows to a client without the password: each check's name, result and short reason. */
export function publicHealth(health: Health): { ok: boolean; failed: CheckName[]; checks: Omit<HealthCheck, 'detail'>[] } {
  return { ok: health.ok, failed: health.failed, checks: health.checks.map(({ name, ok, reason }) => ({ name, ok, reason })) };
}

/**
 * The domains that must be able to sign: those named in the configuration
 * (signing.domains, rotation.domains, demo) and those with an active or
 * retiring key. A domain whose keys are all pending is still being set up,
 * and one with only revoked keys was given up: neither makes the relay unhealthy.
 */
export function signingDomains(configured: Iterable<string>, keys: readonly { domain: string; state: string }[]): string[] {
  const domains = new Set([...configured].map((d) => d.toLowerCase().replace(/\.$/, '')));
  for (const key of keys) if (key.state === 'active' || key.state === 'retiring') domains.add(key.domain);
  return [...domains].sort();
}

export type Readiness = 'starting' | 'ready' | 'draining';

/** A shared key store: how long it has not answered (0 while it does), and whether this relay holds a key set. */
export interface KeyStoreReach {
  unreachableSeconds: number;
  loaded: boolean;
}

/**
 * Ready or not; a smart host failing for longer than queue.retryAfter, a
 * shared key store away, or a PKCS#11 token failing, is named on a further
 * line, still with 200: the relay accepts, signs with the keys it can use and
 * queues, but the operator must know. A relay that never loaded a key set
 * defers all mail (451): 503, so a load balancer sends it none.
 */
export function readyAnswer(
  state: Readiness,
  upstream?: UpstreamState,
  store?: KeyStoreReach,
  token?: TokenHealth & { now: number },
): { status: 200 | 503; body: string } {
  if (state !== 'ready') return { status: 503, body: `${state}\n` };
  const away = store && store.unreachableSeconds > 0 ? `key store unreachable for ${duration(Math.floor(store.unreachableSeconds))}` : null;
  if (store && !store.loaded) return { status: 503, body: `no keys loaded yet${away ? `: ${away}` : ''}; mail is deferred (451)\n` };
  const problems = [
    upstream && upstreamProblem(upstream),
    away && `${away} (signing with the keys held; rotation paused)`,
    token && tokenProblem(token),
  ].filter((p) => p);
  return { status: 200, body: ['ready', ...problems].map((l) => `${l}\n`).join('') };
}

/** "upstream smtp host:587 failing for 12m: 451 4.4.1 …", or null while it answers (or not for long). */
export function upstreamProblem(upstream: UpstreamState): string | null {
  const seconds = failingFor(upstream);
  if (seconds === null) return null;
  return `upstream ${upstream.name} failing for ${duration(seconds)} (longer than queue.retryAfter; mail is queued meanwhile): ${upstream.lastReply ?? 'no reply'}`;
}

/** "PKCS#11 token dkim failing for 12s: …", or null while it works. */
export function tokenProblem(token: TokenHealth & { now: number }): string | null {
  if (token.state !== 'down' || token.downSince === null) return null;
  const seconds = Math.max(0, Math.floor((token.now - token.downSince) / 1000));
  return `PKCS#11 token ${token.token} failing for ${duration(seconds)} (mail of the domains whose keys it holds is deferred, 451): ${token.problem ?? 'no detail'}`;
}

function duration(seconds: number): string {
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`;
  return `${Math.floor(seconds / 3600)}h${Math.floor((seconds % 3600) / 60)}m`;
}
