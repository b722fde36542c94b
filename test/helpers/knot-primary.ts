// A real authoritative server for tests of dynamic updates: Debian's Knot DNS
// (knotd), run in the foreground on a free loopback port, with zones that a
// TSIG key may update. Everything lives in a temporary directory.
//
//   const knot = await startKnotPrimary({ 'example.com': ['sel1._domainkey CNAME sel1.example-com.dkim.example.net.'] });
//   … knot.port, knot.tsig, await knot.txt('name'); await knot.stop();
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const KNOTD = '/usr/sbin/knotd';

export interface KnotPrimary {
  port: number;
  /** "127.0.0.1:PORT" for dns.publish[].server and Resolver.setServers. */
  address: string;
  dir: string;
  /** The key the zones accept updates signed with; `secret` is base64. */
  tsig: { name: string; algorithm: 'hmac-sha256' | 'hmac-sha512'; secret: string };
  /** Every TXT record at `name`, strings joined; [] when there is none. */
  txt(name: string): Promise<string[]>;
  /** The target of the CNAME at `name`, or undefined. */
  cname(name: string): Promise<string | undefined>;
  /** The SOA serial of `zone`: it grows with each applied update. */
  serial(zone: string): Promise<number>;
  stop(): Promise<void>;
}

export interface KnotOptions {
  algorithm?: 'hmac-sha256' | 'hmac-sha512';
  /** Zones the key may read (transfer) but not update. */
  readOnly?: string[];
  /**
   * Where it listens (default: 127.0.0.1 on a free port). Port 53 makes it
   * the zones' authoritative server as a relay finds it: through the NS
   * record, whose ns.<zone> has this address.
   */
  listen?: { host: string; port: number };
}

/** `zones`: zone name → extra zone-file lines (relative to the zone). */
export async function startKnotPrimary(zones: Record<string, string[]>, options: KnotOptions = {}): Promise<KnotPrimary> {
  const algorithm = options.algorithm ?? 'hmac-sha256';
  const dir = mkdtempSync(join(tmpdir(), 'dkim-knot-'));
  const tsig = { name: 'dkim-relay-test', algorithm, secret: randomBytes(32).toString('base64') };
  for (const [zone, lines] of Object.entries(zones)) {
    const head = [
      `$ORIGIN ${zone}.`,
      '$TTL 300',
      `@ SOA ns.${zone}. hostmaster.${zone}. 1 3600 900 604800 300`,
      `@ NS ns.${zone}.`,
      `ns A ${options.listen?.host ?? '127.0.0.1'}`,
    ];
    writeFileSync(join(dir, `${zone}.zone`), [...head, ...lines, ''].join('\n'));
  }
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    const host = options.listen?.host ?? '127.0.0.1';
    const port = options.listen?.port ?? (await freePort());
    writeFileSync(join(dir, 'knot.conf'), config(dir, host, port, tsig, Object.keys(zones), options.readOnly ?? []));
    const child = spawn(KNOTD, ['-c', join(dir, 'knot.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr!.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-4000)));
    const resolver = new Resolver({ timeout: 500, tries: 1 });
    resolver.setServers([`${host}:${port}`]);
    try {
      await waitUntilServing(resolver, Object.keys(zones), child);
    } catch (err) {
      await kill(child);
      lastError = new Error(`knotd did not start: ${(err as Error).message}\n${log}`);
      continue;
    }
    return {
      port,
      address: `${host}:${port}`,
      dir,
      tsig,
      txt: async (name) => {
        try {
          return (await resolver.resolveTxt(name)).map((strings) => strings.join(''));
        } catch (err) {
          if (['ENODATA', 'ENOTFOUND'].includes((err as NodeJS.ErrnoException).code ?? '')) return [];
          throw err;
        }
      },
      cname: async (name) => {
        try {
          return (await resolver.resolveCname(name))[0];
        } catch (err) {
          if (['ENODATA', 'ENOTFOUND'].includes((err as NodeJS.ErrnoException).code ?? '')) return undefined;
          throw err;
        }
      },
      serial: async (zone) => (await resolver.resolveSoa(zone)).serial,
      stop: async () => {
        await kill(child);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  rmSync(dir, { recursive: true, force: true });
  throw lastError!;
}

function config(dir: string, host: string, port: number, tsig: KnotPrimary['tsig'], zones: string[], readOnly: string[]): string {
  return `server:
  listen: ${host}@${port}
  rundir: "${dir}"
log:
  - target: stderr
    any: info
database:
  storage: "${dir}"
key:
  - id: ${tsig.name}
    algorithm: ${tsig.algorithm}
    secret: ${tsig.secret}
acl:
  - id: relay-update
    key: ${tsig.name}
    action: update
  - id: relay-transfer
    key: ${tsig.name}
    action: transfer
template:
  - id: default
    storage: "${dir}"
    file: "%s.zone"
    zonefile-sync: -1
    journal-content: changes
    acl: relay-update
zone:
${zones.map((z) => `  - domain: ${z}\n${readOnly.includes(z) ? '    acl: relay-transfer\n' : ''}`).join('')}`;
}

/** A loopback port free for both UDP and TCP: bind UDP port 0, then TCP on the same port (a few tries). */
async function freePort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const udp = createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    const port = udp.address().port;
    const tcp = createServer();
    const free = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, '127.0.0.1', () => resolve(true));
    });
    await new Promise<void>((resolve) => (free ? tcp.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => udp.close(() => resolve()));
    if (free) return port;
  }
  throw new Error('no loopback port free for both UDP and TCP');
}

/** Polls the SOA of every zone, at most 50 times 100 ms; fails at once if knotd exits. */
async function waitUntilServing(resolver: Resolver, zones: string[], child: ChildProcess): Promise<void> {
  let exited = false;
  child.once('exit', () => (exited = true));
  for (let i = 0; i < 50; i++) {
    if (exited) throw new Error('knotd exited');
    try {
      for (const zone of zones) await resolver.resolveSoa(zone);
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error('no answer within 5s');
}

/** SIGTERM, then SIGKILL after 3 s; resolves when the process is gone. */
function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const hard = setTimeout(() => child.kill('SIGKILL'), 3000);
    child.once('exit', () => {
      clearTimeout(hard);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
