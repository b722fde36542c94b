// A real authoritative DNS server for tests: Debian's Knot DNS (knotd), run in
// the foreground as a child on a free loopback port, with its configuration
// and zone files in a temporary directory. Stopped by SIGTERM (SIGKILL if it
// lingers) when the test is done.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DnsClient } from '../../src/dns/dns-client.ts';
import { tempDir } from './tmp.ts';

export const KNOTD = '/usr/sbin/knotd';
export const KNOTC = '/usr/sbin/knotc';

export interface Knot {
  host: string;
  port: number;
  /** "127.0.0.1:PORT", as --nameserver takes it. */
  address: string;
  /** Replaces the zones' files and reloads them; each zone's SOA serial must have grown. */
  update(zones: Record<string, string>): Promise<void>;
  stop(): Promise<void>;
}

/** A loopback port free for both UDP and TCP at the moment of asking (DNS needs both). */
export async function freeDnsPort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const tcp = createServer();
    await new Promise<void>((resolve, reject) => tcp.once('error', reject).listen(0, host, resolve));
    const port = (tcp.address() as { port: number }).port;
    const udp = createSocket('udp4');
    const ok = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, host, () => resolve(true));
    });
    await new Promise<void>((resolve) => tcp.close(() => resolve()));
    await new Promise<void>((resolve) => (ok ? udp.close(() => resolve()) : resolve()));
    if (ok) return port;
  }
  throw new Error('no loopback port free for both UDP and TCP after 20 tries');
}

/**
 * Starts knotd serving `zones` (origin → zone-file text) and waits until it
 * answers the first zone's SOA (at most about 5 s).
 */
export async function startKnot(zones: Record<string, string>, where: { host?: string; port?: number } = {}): Promise<Knot> {
  const dir = tempDir('dkim-relay-knot-');
  mkdirSync(join(dir, 'db'));
  for (const [origin, text] of Object.entries(zones)) writeFileSync(join(dir, `${origin}.zone`), text);
  const host = where.host ?? '127.0.0.1';
  const port = where.port ?? (await freeDnsPort(host));
  writeFileSync(
    join(dir, 'knot.conf'),
    [
      'server:',
      `    rundir: "${dir}"`,
      `    listen: ${host}@${port}`,
      'control:',
      `    listen: "${join(dir, 'knot.sock')}"`,
      'log:',
      '  - target: stderr',
      '    any: error',
      'database:',
      `    storage: "${join(dir, 'db')}"`,
      'template:',
      '  - id: default',
      `    storage: "${dir}"`,
      '    file: "%s.zone"',
      '    journal-content: none',
      '    zonefile-sync: -1',
      'zone:',
      ...Object.keys(zones).map((origin) => `  - domain: ${origin}`),
      '',
    ].join('\n'),
  );

  const child: ChildProcess = spawn(KNOTD, ['-c', join(dir, 'knot.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const gone = await Promise.race([exited.then(() => true), sleep(3000, false, { ref: false })]);
    if (!gone) {
      child.kill('SIGKILL');
      // A process stuck in the kernel may not die at once; the test goes on rather than waiting for ever.
      await Promise.race([exited, sleep(5000, undefined, { ref: false })]);
    }
  };

  const update = async (next: Record<string, string>) => {
    for (const [origin, text] of Object.entries(next)) writeFileSync(join(dir, `${origin}.zone`), text);
    // -b: wait until knotd has loaded them.
    await new Promise<void>((resolve, reject) =>
      execFile(KNOTC, ['-c', join(dir, 'knot.conf'), '-b', 'zone-reload', ...Object.keys(next)], { timeout: 10_000 }, (err, _out, errText) =>
        err ? reject(new Error(`knotc zone-reload failed: ${errText || err.message}`)) : resolve(),
      ),
    );
  };

  const first = Object.keys(zones)[0]!;
  for (let attempt = 0; attempt < 25; attempt++) {
    if (child.exitCode !== null) break;
    const answer = await new DnsClient({ timeoutMs: 200, tries: 1 }).query(first, 'SOA', { host, port });
    if (answer.ok && answer.records.length > 0) return { host, port, address: `${host}:${port}`, update, stop };
    await sleep(100);
  }
  await stop();
  throw new Error(`knotd did not start serving ${first} on ${host}:${port}: ${stderr.trim()}`);
}
