// /healthz and /readyz as pure decisions: the facts are gathered elsewhere
// (relay-view.ts), the answers are decided here.
//
// Healthy means the relay can take and sign mail now: its SMTP listeners
// accept, the spool (when there is one) takes files, the key store opens, and
// every signing domain has an active key whose file loads. Ready means a load
// balancer may send it new connections: started, and not stopping.

import { failingFor, type UpstreamState } from '../delivery/upstream-health.ts';

export type CheckName = 'listener' | 'spool' | 'key-store' | 'signing-keys';

export interface HealthFacts {
  /** Every SMTP listener is accepting connections. */
  listening: boolean;
  /** queue.dir: absent (no queue yet), or whether a file could be created in it. */
  spool: { exists: false } | { exists: true; writable: true } | { exists: true; writable: false; error: string };
  keyStore: { ok: true } | { ok: false; error: string };
  /** Each signing domain: its active keys that load, and the problem of one that does not. */
  domains: readonly { domain: string; usableKeys: number; problem?: string }[];
}

export interface Check {
  name: CheckName;
  ok: boolean;
  detail: string;
}

export interface Health {
  ok: boolean;
  /** The names of the checks that failed, for a quick look. */
  failed: CheckName[];
  checks: Check[];
}

export function decideHealth(facts: HealthFacts): Health {
  const checks: Check[] = [
    { name: 'listener', ok: facts.listening, detail: facts.listening ? 'accepting SMTP connections' : 'the SMTP listener is not accepting connections' },
    spoolCheck(facts.spool),
    { name: 'key-store', ok: facts.keyStore.ok, detail: facts.keyStore.ok ? 'opens' : facts.keyStore.error },
    keysCheck(facts),
  ];
  const failed = checks.filter((c) => !c.ok).map((c) => c.name);
  return { ok: failed.length === 0, failed, checks };
}

function spoolCheck(spool: HealthFacts['spool']): Check {
  if (!spool.exists) return { name: 'spool', ok: true, detail: 'no spool directory (nothing is queued)' };
  return spool.writable ? { name: 'spool', ok: true, detail: 'writable' } : { name: 'spool', ok: false, detail: spool.error };
}

function keysCheck(facts: HealthFacts): Check {
  // Without a key store, the keys cannot be judged: the key-store check says why.
  if (!facts.keyStore.ok) return { name: 'signing-keys', ok: false, detail: 'unknown: the key store does not open' };
  const problems = facts.domains.flatMap((d) => {
    if (d.problem !== undefined) return [d.problem];
    return d.usableKeys === 0 ? [`${d.domain} has no active key`] : [];
  });
  if (problems.length > 0) return { name: 'signing-keys', ok: false, detail: problems.join('; ') };
  return { name: 'signing-keys', ok: true, detail: `${facts.domains.length} signing domain${facts.domains.length === 1 ? '' : 's'}, each with an active key that loads` };
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

/**
 * Ready or not; a smart host failing for longer than queue.retryAfter is
 * named on a second line, still with 200: the relay accepts and queues, but
 * the operator must know.
 */
export function readyAnswer(state: Readiness, upstream?: UpstreamState): { status: 200 | 503; body: string } {
  if (state !== 'ready') return { status: 503, body: `${state}\n` };
  const problem = upstream && upstreamProblem(upstream);
  return { status: 200, body: problem ? `ready\n${problem}\n` : 'ready\n' };
}

/** "upstream smtp host:587 failing for 12m: 451 4.4.1 …", or null while it answers (or not for long). */
export function upstreamProblem(upstream: UpstreamState): string | null {
  const seconds = failingFor(upstream);
  if (seconds === null) return null;
  return `upstream ${upstream.name} failing for ${duration(seconds)} (longer than queue.retryAfter; mail is queued meanwhile): ${upstream.lastReply ?? 'no reply'}`;
}

function duration(seconds: number): string {
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`;
  return `${Math.floor(seconds / 3600)}h${Math.floor((seconds % 3600) / 60)}m`;
}
