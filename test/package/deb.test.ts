// The Debian package, built and used as an administrator would: apt-get
// install, the command on PATH, its man page, the shipped configuration,
// keys owned by the service user, the relay run as that user signing a
// message dkimpy verifies, lintian, and apt-get purge. It installs into the
// real system, so it needs root and runs only where the package, its user
// and its directories are absent; it leaves the machine as it found it.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { verifyWithDkimpy } from '../helpers/independent-verify.ts';
import { tempDir } from '../helpers/tmp.ts';
import { ROOT } from '../cli/support.ts';
import { skipWithout } from '../helpers/tools.ts';

const PATHS = ['/usr/lib/dkim-relay', '/etc/dkim-relay', '/var/lib/dkim-relay', '/var/spool/dkim-relay', '/var/cache/dkim-relay'];
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], options: { cwd?: string; timeout?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive', LANG: 'C.UTF-8', ...options.env };
    const child = execFile(
      file,
      args,
      { cwd: options.cwd, env, encoding: 'utf8', timeout: options.timeout ?? 60_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') return reject(new Error(`${file} ${args.join(' ')}: ${err.message}\n${stderr}`));
        resolve({ code: child.exitCode, stdout, stderr });
      },
    );
    child.stdin?.end();
  });
}

async function ok(file: string, args: string[], options: { cwd?: string; timeout?: number } = {}): Promise<string> {
  const r = await run(file, args, options);
  assert.equal(r.code, 0, `${file} ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

async function installed(): Promise<boolean> {
  return (await run('dpkg-query', ['-W', '-f=${Status}', 'dkim-relay'])).stdout.includes('installed');
}

async function userExists(): Promise<boolean> {
  return (await run('getent', ['passwd', 'dkim-relay'])).code === 0;
}

/** Why this machine cannot run the test, or undefined. */
function whyNot(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root: it installs the package into this system (CI runs it as root)';
  const tools = skipWithout('dpkg-deb', 'dpkg-shlibdeps', 'lintian', 'man', 'swaks', 'dkimpy');
  if (tools) return tools;
  const present = PATHS.find((p) => existsSync(p));
  if (present) return `${present} exists: dkim-relay is installed here, and the test would remove it`;
  return undefined;
}

const reason = whyNot();
if (reason) {
  // CI must never pass by skipping: there the missing precondition is a failure.
  if (process.env.CI) throw new Error(`the package test cannot run in CI: ${reason}`);
  console.log(`# SKIPPED test/package/deb.test.ts: ${reason}`);
}

/** `dkim-relay serve` as the service user, as systemd runs it (no systemd here). */
function serveAsServiceUser(config: string) {
  // setpriv execs: the relay's PID is the child's, and no process stays in between.
  const child = spawn('setpriv', ['--reuid=dkim-relay', '--regid=dkim-relay', '--init-groups', '--', '/usr/bin/dkim-relay', 'serve', '--config', config], {
    cwd: '/',
    env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const listening = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not listen within 60 s:\n${output}`)), 60_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const line = output.split('\n').find((l) => l.includes('"relay listening"'));
      if (line) {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { plain: number }).plain);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited ${code}:\n${output}`));
    });
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, listening, exited, output: () => output };
}

/** The one file that appears in `dir`, polled every 100 ms for at most 30 s. */
async function oneFile(dir: string): Promise<string> {
  for (let i = 0; i < 300; i++) {
    const files = readdirSync(dir).filter((f) => f.endsWith('.eml'));
    const [first] = files;
    if (first !== undefined) return join(dir, first);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no message in ${dir} after 30 s`);
}

test('the Debian package installs, runs as dkim-relay, signs, passes lintian and purges', { skip: reason, timeout: 600_000 }, async () => {
  const work = tempDir('dkim-relay-deb-');
  chmodSync(work, 0o755);
  const userBefore = await userExists();
  try {
    const started = Date.now();
    const built = (await ok('bash', [join(ROOT, 'packaging', 'deb', 'build.sh'), work], { timeout: 300_000 })).trim();
    assert.equal(built, join(work, `dkim-relay_${VERSION}_amd64.deb`));
    console.log(`# built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    // lintian reads the archive while the rest runs.
    const lintian = run('lintian', ['--fail-on', 'error,warning', built], { timeout: 500_000 });

    await ok('apt-get', ['install', '-y', '-q', `./${`dkim-relay_${VERSION}_amd64.deb`}`], { cwd: work, timeout: 300_000 });
    assert.equal((await ok('dkim-relay', ['--version'])).trim(), VERSION);
    assert.equal((await ok('man', ['-w', 'dkim-relay'])).trim(), '/usr/share/man/man1/dkim-relay.1.gz');
    await ok('dkim-relay', ['config', 'check']);

    // Installing enabled and started nothing.
    assert.ok(!existsSync('/etc/systemd/system/multi-user.target.wants/dkim-relay.service'));
    const user = (await ok('getent', ['passwd', 'dkim-relay'])).split(':');
    const [uid, gid] = [Number(user[2]), Number(user[3])];
    for (const [dir, owner] of [
      ['/var/lib/dkim-relay/keys', uid],
      ['/var/spool/dkim-relay', uid],
      ['/etc/dkim-relay', 0],
    ] as const) {
      const st = statSync(dir);
      assert.equal(st.uid, owner, dir);
      assert.equal(st.mode & 0o777, owner === 0 ? 0o750 : 0o700, dir);
    }
    assert.equal(statSync('/etc/dkim-relay/dkim-relay.yaml').mode & 0o777, 0o640);
    assert.equal(statSync('/etc/dkim-relay/dkim-relay.yaml').gid, gid);

    // root generates the key; the store stays the relay's.
    await ok('dkim-relay', ['keys', 'generate', '--domain', 'example.com', '--activate']);
    const keyFiles = readdirSync('/var/lib/dkim-relay/keys');
    assert.ok(
      keyFiles.some((f) => f.endsWith('.pem')),
      keyFiles.join(' '),
    );
    for (const f of keyFiles) assert.equal(statSync(join('/var/lib/dkim-relay/keys', f)).uid, uid, `${f} is not owned by dkim-relay`);
    const records = JSON.parse(await ok('dkim-relay', ['keys', 'dns', '--json'])) as { name: string; value: string }[];

    // The relay as the service user, on a free loopback port, delivering into a folder.
    const outbox = join(work, 'outbox');
    await ok('install', ['-d', '-o', 'dkim-relay', '-m', '0700', outbox]);
    const config = join(work, 'relay.yaml');
    writeFileSync(
      config,
      [
        'keys: { dir: /var/lib/dkim-relay/keys }',
        'listen: { host: 127.0.0.1, port: 0 }',
        'queue: { dir: /var/spool/dkim-relay }',
        `delivery: { upstream: { type: file, dir: ${outbox} } }`,
        'metrics: { listen: "127.0.0.1:0" }',
        'rotation: { check: "off" }',
        '',
      ].join('\n'),
    );
    chownSync(config, 0, 0);
    const relay = serveAsServiceUser(config);
    try {
      const port = await relay.listening;
      const pid = relay.child.pid!;
      // The package's own runtime is the process itself, as the service user, with serve's memory settings.
      assert.equal(readlinkSync(`/proc/${pid}/exe`), '/usr/lib/dkim-relay/bin/node');
      assert.match(readFileSync(`/proc/${pid}/cmdline`).toString(), /--max-old-space-size=1536/);
      assert.match(readFileSync(`/proc/${pid}/status`, 'utf8'), new RegExp(`^Uid:\\s+${uid}\\s`, 'm'));
      await ok('swaks', ['--server', `127.0.0.1:${port}`, '--from', 'a@example.com', '--to', 'b@example.net', '--header', 'Subject: packaged'], {
        timeout: 60_000,
      });
      const message = readFileSync(await oneFile(outbox));
      assert.deepEqual(await verifyWithDkimpy(message, Object.fromEntries(records.map((r) => [r.name, r.value]))), [true]);
    } finally {
      relay.child.kill('SIGTERM');
      assert.equal(await relay.exited, 0, relay.output());
    }

    const lint = await lintian;
    assert.equal(lint.code, 0, `lintian:\n${lint.stdout}${lint.stderr}`);
    console.log(`# lintian: ${lint.stdout.trim() || 'clean'}`);

    // purge: the program, its configuration and cache go; keys and spool stay, with their owner.
    await ok('apt-get', ['purge', '-y', '-q', 'dkim-relay'], { timeout: 300_000 });
    for (const gone of ['/usr/bin/dkim-relay', '/usr/lib/dkim-relay', '/etc/dkim-relay', '/var/cache/dkim-relay'])
      assert.ok(!existsSync(gone), `${gone} is left`);
    assert.ok(readdirSync('/var/lib/dkim-relay/keys').some((f) => f.endsWith('.pem')));
    assert.ok(existsSync('/var/spool/dkim-relay/queue.db'));
    assert.ok(await userExists());
    console.log(`# package test done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    if (await installed()) await run('apt-get', ['purge', '-y', '-q', 'dkim-relay'], { timeout: 300_000 });
    await run('rm', ['-rf', ...PATHS]);
    if (!userBefore && (await userExists())) await run('userdel', ['dkim-relay']);
    if (!userBefore) await run('groupdel', ['dkim-relay']);
  }
});
