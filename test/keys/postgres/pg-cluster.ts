// A private PostgreSQL cluster for one test file: initdb in a directory of its
// own, the server run as an unprivileged user (initdb refuses root), TCP off,
// its Unix socket in that directory, stopped (fast) when the test ends.
// Needs the Debian package `postgresql`; without it a test skips, printing
// why, except under CI (process.env.CI), where it fails.
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The newest installed PostgreSQL's bin directory, or undefined. */
export function postgresBin(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(a) - Number(b));
  const newest = versions.at(-1);
  return newest === undefined ? undefined : join(root, newest, 'bin');
}

/**
 * `{ skip: reason }` for node:test when PostgreSQL is not installed, `{}` when
 * it is; throws under CI, where a missing tool is a broken image, not a reason to skip.
 */
export function postgresOrSkip(): { skip?: string } {
  if (postgresBin() !== undefined) return {};
  const reason = 'PostgreSQL is not installed (initdb not found under /usr/lib/postgresql/*/bin): apt-get install postgresql';
  if (process.env.CI) throw new Error(`${reason} — CI must provide it`);
  console.log(`# skipped: ${reason}`);
  return { skip: reason };
}

export interface PgCluster {
  dir: string;
  /** The socket directory, for ?host=. */
  socketDir: string;
  /** URL of a fresh database `name` (created on demand) as user dkim over the private socket. */
  createDatabase(name: string): Promise<string>;
  /** psql -c `sql` on database `db`, as the superuser; stdout. */
  psql(db: string, sql: string): Promise<string>;
  /** pg_dump of database `db` (data and schema as SQL text). */
  dump(db: string): Promise<string>;
  /** Stops the server (fast), keeping its data: the store goes away. */
  pause(): Promise<void>;
  /** Starts it again on the same socket. */
  resume(): Promise<void>;
  stop(): Promise<void>;
}

const USER = 'nobody';
const GROUP = 'nogroup';
const START_TIMEOUT_S = 60;

function asUser(bin: string, tool: string, args: string[], timeout = (START_TIMEOUT_S + 10) * 1000): Promise<{ stdout: string }> {
  return run('setpriv', [`--reuid=${USER}`, `--regid=${GROUP}`, '--clear-groups', join(bin, tool), ...args], { timeout, maxBuffer: 64 << 20 });
}

export async function startPgCluster(): Promise<PgCluster> {
  const bin = postgresBin();
  if (bin === undefined) throw new Error('PostgreSQL is not installed: apt-get install postgresql');
  // Every directory above must be traversable by the server's user: /tmp is, mkdtemp's 0700 is made 0755.
  const dir = mkdtempSync('/tmp/dkim-relay-pg-');
  chmodSync(dir, 0o755);
  const socketDir = join(dir, 'sock');
  mkdirSync(socketDir);
  const { uid, gid } = await ids();
  chownSync(dir, uid, gid);
  chownSync(socketDir, uid, gid);
  const data = join(dir, 'data');
  await asUser(bin, 'initdb', ['-D', data, '-A', 'trust', '-U', 'dkim', '--no-sync']);
  // -t bounds the wait for the server to accept connections.
  const start = () =>
    asUser(bin, 'pg_ctl', [
      '-D',
      data,
      '-w',
      '-t',
      String(START_TIMEOUT_S),
      '-l',
      join(dir, 'log'),
      '-o',
      `-k ${socketDir} -c listen_addresses='' -c fsync=off`,
      'start',
    ]);
  await start();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await asUser(bin, 'pg_ctl', ['-D', data, '-w', '-t', '30', '-m', 'fast', 'stop']).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  };
  // A test process that ends without stop() must not leave a server behind.
  process.once('exit', () => {
    if (!stopped) {
      try {
        process.kill(Number(readPid(data)), 'SIGQUIT');
      } catch {
        // already gone
      }
    }
  });
  const url = (db: string) => `postgresql://dkim@localhost/${db}?host=${encodeURIComponent(socketDir)}`;
  return {
    dir,
    socketDir,
    async createDatabase(name) {
      await asUser(bin, 'createdb', ['-h', socketDir, '-U', 'dkim', name]);
      return url(name);
    },
    async psql(db, sql) {
      return (await asUser(bin, 'psql', ['-h', socketDir, '-U', 'dkim', '-d', db, '-At', '-c', sql])).stdout;
    },
    async dump(db) {
      return (await asUser(bin, 'pg_dump', ['-h', socketDir, '-U', 'dkim', db])).stdout;
    },
    async pause() {
      await asUser(bin, 'pg_ctl', ['-D', data, '-w', '-t', '30', '-m', 'fast', 'stop']);
    },
    async resume() {
      await start();
    },
    stop,
  };
}

function readPid(data: string): string {
  return readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]!;
}

async function ids(): Promise<{ uid: number; gid: number }> {
  const uid = Number((await run('id', ['-u', USER])).stdout.trim());
  const gid = Number((await run('getent', ['group', GROUP])).stdout.split(':')[2]);
  return { uid, gid };
}
