// Shared by the PostgreSQL key store tests.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Served } from '../../cli/support.ts';

/** A key-encryption key file as `openssl rand -base64 32` makes it, mode 0600. */
export function kekFile(dir: string, name = 'kek'): string {
  const file = join(dir, name);
  writeFileSync(file, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  return file;
}

/** The port of a `serve` process's metrics, health and status page listener, from its latest "relay listening" line. */
export function metricsPort(relay: Served): number {
  const line = relay
    .output()
    .split('\n')
    .filter((l) => l.includes('"relay listening"'))
    .at(-1)!;
  return (JSON.parse(line) as { metrics: number }).metrics;
}

/** What a relay's /healthz says of its key store: "… generation N …", "unreachable since …", "changes pushed". */
export async function healthNote(relay: Served): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${metricsPort(relay)}/healthz`, { signal: AbortSignal.timeout(5000) });
  const body = (await res.json()) as { checks: { name: string; detail: string }[] };
  return body.checks.find((c) => c.name === 'key-store')!.detail;
}
