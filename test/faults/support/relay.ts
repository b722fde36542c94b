// The relay under test: its configuration, the real `serve`, what it says
// about itself (metrics, /healthz), and what reached the smart host.
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dkimRelay, serve, type Run, type Served } from '../../cli/support.ts';
import type { SmartHost } from './smart-host.ts';
import { accepted, type Outcome } from './load.ts';

export interface RelaySetup {
  dir: string;
  /** Added after the defaults: YAML lines, top-level keys the defaults lack or replacing whole sections. */
  extra?: Record<string, string>;
  upstreamPort: number;
}

/**
 * Queue mode to the smart host, a demo key for example.com, short retries, the
 * rotation scheduler off unless a case turns it on, every port chosen by the kernel.
 */
export function writeConfig(file: string, setup: RelaySetup): void {
  const sections: Record<string, string> = {
    listen: '{host: 127.0.0.1, port: 0, hostname: relay.test}',
    metrics: '{listen: "127.0.0.1:0"}',
    keys: `{dir: ${join(setup.dir, 'keys')}}`,
    demo: '{domain: example.com}',
    delivery: `{mode: queue, upstream: {type: smtp, host: 127.0.0.1, port: ${setup.upstreamPort}, timeoutSeconds: 3}}`,
    queue: `{dir: ${join(setup.dir, 'spool')}, retryAfter: 1s, maxRetryInterval: 2s}`,
    rotation: '{check: "off"}',
    dns: '{timeoutSeconds: 1}',
    ...setup.extra,
  };
  writeFileSync(
    file,
    Object.entries(sections)
      .map(([k, v]) => `${k}: ${v}\n`)
      .join(''),
  );
}

/** One compile cache for every `serve` of the suite: each case runs in a process of its own, and a cold start costs seconds. */
export const COMPILE_CACHE = join(tmpdir(), 'dkim-relay-faults-compile-cache');

export async function startRelay(config: string, dir: string, options: { node?: string } = {}): Promise<Served> {
  return serve(['--config', config], dir, { ...options, env: { NODE_COMPILE_CACHE: COMPILE_CACHE } });
}

export function ports(relay: Served): { plain: number; metrics: number } {
  const line = relay
    .output()
    .split('\n')
    .filter((l) => l.includes('"relay listening"'))
    .at(-1)!;
  return JSON.parse(line) as { plain: number; metrics: number };
}

export async function metricsText(relay: Served): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${ports(relay).metrics}/metrics`);
  return res.text();
}

/** The value of one series ("name{labels}" as Prometheus prints it, or a bare name); 0 when absent. */
export function metricValue(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

/** The lines of one metric family whose labels contain every fragment. */
export function metricLines(text: string, name: string, ...fragments: string[]): string[] {
  return text.split('\n').filter((l) => l.startsWith(name + '{') && fragments.every((f) => l.includes(f)));
}

export async function healthz(
  relay: Served,
): Promise<{ status: number; body: { failed?: string[]; checks?: { name: string; ok: boolean; detail: string }[] } }> {
  const res = await fetch(`http://127.0.0.1:${ports(relay).metrics}/healthz`);
  return { status: res.status, body: (await res.json()) as never };
}

/** Polls `probe` every 100 ms until it holds: for state only visible by asking (HTTP, files). Bounded by `ms`. */
export async function eventually<T>(what: string, ms: number, probe: () => Promise<T | undefined> | T | undefined, alive?: Served): Promise<T> {
  const until = Date.now() + ms;
  let last: unknown;
  for (;;) {
    if (alive && (alive.child.exitCode !== null || alive.child.signalCode !== null)) {
      throw new Error(`the relay exited (${alive.child.exitCode ?? alive.child.signalCode}) while waiting for ${what}:\n${alive.output().slice(-3000)}`);
    }
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= until) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function cli(args: string[], config: string, dir: string): Promise<Run> {
  return dkimRelay([...args, '--config', config], dir);
}

export interface Tally {
  /** Messages answered 250. */
  accepted: number;
  /** Answered 250 and never delivered. */
  lost: string[];
  /** Extra copies of messages of the load delivered more than once. */
  duplicates: number;
}

/**
 * Waits (at most `ms`) until every message answered 250 has reached the host,
 * then counts what was lost and what arrived twice.
 */
export async function settle(host: SmartHost, outcomes: Outcome[], ms: number): Promise<Tally> {
  const ids = accepted(outcomes);
  const copies = () => {
    const counts = new Map<string, number>();
    for (const m of host.received) counts.set(m.messageId, (counts.get(m.messageId) ?? 0) + 1);
    return counts;
  };
  await host
    .until(
      () => {
        const counts = copies();
        return ids.every((id) => counts.has(id));
      },
      ms,
      `${ids.length} accepted messages at the smart host`,
    )
    .catch(() => undefined);
  const counts = copies();
  let duplicates = 0;
  for (const o of outcomes) duplicates += Math.max(0, (counts.get(o.id) ?? 0) - 1);
  return { accepted: ids.length, lost: ids.filter((id) => !counts.has(id)), duplicates };
}
