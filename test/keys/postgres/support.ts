// Shared by the PostgreSQL key store tests.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SILENT_AFTER_MS } from '../../../src/keys/heartbeat.ts';
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

/**
 * For a relay killed on purpose: once it counts as silent, its spool is
 * unknown and holds every revocation (as it must), so what a test waits for
 * may never come; an operator then forgets the relay, once its spool is dealt
 * with. This does the same, unless `settled` resolves first (then it stops).
 */
export async function forgetOnceSilent(
  psql: (sql: string) => Promise<string>,
  address: string,
  forget: (name: string, address: string) => Promise<{ code: number | null; stderr: string }>,
  settled: Promise<unknown>,
): Promise<void> {
  let done = false;
  void settled.then(
    () => (done = true),
    () => (done = true),
  );
  const deadline = Date.now() + 120_000;
  while (!done && Date.now() < deadline) {
    const row = (
      await psql(`SELECT name, now() - last_contact::timestamptz > interval '${SILENT_AFTER_MS} milliseconds' FROM fleet_nodes WHERE address = '${address}'`)
    ).trim();
    const [name, silent] = row.split('|');
    if (row === '') return;
    if (silent === 't') {
      const run = await forget(name!, address);
      if (run.code !== 0) throw new Error(`keys fleet forget ${name} --address ${address}: exit ${run.code}: ${run.stderr}`);
      return;
    }
    await Promise.race([settled.catch(() => {}), new Promise((resolve) => setTimeout(resolve, 1000))]);
  }
}
