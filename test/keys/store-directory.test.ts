// The key store directory as `dkim-relay serve` and `keys` meet it: a fresh
// checkout's empty keys/ (0755) is made private without a word, one that held
// keys while open is reported, and a directory reached through a symbolic link
// is never changed.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { SqliteKeyStore } from '../../src/keys/store.ts';
import { tempDir } from '../helpers/tmp.ts';
import { BIN, dkimRelay, NODE } from '../cli/support.ts';

function mode(path: string): string {
  return (statSync(path).mode & 0o7777).toString(8).padStart(4, '0');
}

/** A checkout as cloned: keys/ of mode 0755 holding only its .gitignore, and a configuration on a free port. */
function checkout(): { cwd: string; keys: string; config: string } {
  const cwd = tempDir();
  const keys = join(cwd, 'keys');
  mkdirSync(keys);
  chmodSync(keys, 0o755);
  writeFileSync(join(keys, '.gitignore'), '*\n!.gitignore\n');
  const config = join(cwd, 'relay.yaml');
  writeFileSync(
    config,
    `listen:\n  port: 0\nmetrics:\n  listen: 127.0.0.1:0\ndelivery:\n  upstream:\n    type: file\n    dir: ${join(cwd, 'outbox')}\ndemo:\n  domain: example.com\nrotation:\n  check: "off"\n`,
  );
  return { cwd, keys, config };
}

/** Runs `serve` until it listens (or exits), then stops it; returns everything it printed. */
function serveOnce(cwd: string, config: string): Promise<{ output: string; stderr: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, [BIN, 'serve', '--config', config], { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH, LANG: 'C.UTF-8' } });
    let output = '';
    let stderr = '';
    let stopped = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`serve neither listened nor exited:\n${output}`));
    }, 20_000);
    let stopping = false;
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      // One SIGTERM: a second one is logged as a warning, which the tests look for.
      if (!stopping && output.includes('"relay listening"')) {
        stopping = true;
        child.kill('SIGTERM');
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      onData(chunk);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ output, stderr, code });
    });
  });
}

test('serve on a fresh checkout: the empty keys/ becomes 0700 without a warning', async () => {
  const { cwd, keys, config } = checkout();
  const { output } = await serveOnce(cwd, config);
  assert.match(output, /"relay listening"/);
  assert.equal(mode(keys), '0700');
  assert.doesNotMatch(output, /readable by others/, output);
  assert.doesNotMatch(output, /"level":"warn"/, `a warning on a fresh start:\n${output}`);
});

test('serve on a keys/ open to others that holds keys: tightened, with a warning', async () => {
  const { cwd, keys, config } = checkout();
  const store = SqliteKeyStore.open(keys);
  store.generate({ domain: 'example.com', algorithm: 'ed25519', activate: true });
  store.close();
  chmodSync(keys, 0o755);
  const { output } = await serveOnce(cwd, config);
  assert.match(output, /"relay listening"/);
  assert.equal(mode(keys), '0700');
  assert.match(output, /"level":"warn"[^\n]*"keyFiles":1[^\n]*readable by others while it held keys; now 0700/);
});

test('keys list and status on a keys/ open to others that holds keys: tightened, with a warning on stderr', async () => {
  const { cwd, keys, config } = checkout();
  const store = SqliteKeyStore.open(keys);
  store.generate({ domain: 'example.com', algorithm: 'ed25519', activate: true });
  store.close();
  for (const command of [
    ['keys', 'list'],
    ['status', '--no-dns'],
  ]) {
    chmodSync(keys, 0o755);
    const run = await dkimRelay(['--config', config, ...command], cwd);
    assert.equal(mode(keys), '0700', command.join(' '));
    assert.match(
      run.stderr,
      /^dkim-relay: warning: key store directory \S+ was readable by others while it held 1 key file\(s\); now 0700 — /m,
      command.join(' '),
    );
    assert.match(run.stdout, /example\.com/, command.join(' '));
  }
});

test('keys.dir a symbolic link to a directory others can read: serve and keys refuse it in one line, and leave it as it is', async () => {
  const { cwd, config } = checkout();
  const shared = join(tempDir(), 'shared');
  mkdirSync(shared);
  chmodSync(shared, 0o1777); // as /tmp
  const link = join(cwd, 'linked-keys');
  symlinkSync(shared, link);
  writeFileSync(config, `keys:\n  dir: ${link}\nlisten:\n  port: 0\nmetrics:\n  listen: 127.0.0.1:0\n`);
  const [served, listed] = await Promise.all([serveOnce(cwd, config), dkimRelay(['--config', config, 'keys', 'list'], cwd)]);
  for (const run of [served, listed]) {
    assert.equal(run.code, 2, run.stderr);
    const lines = run.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, run.stderr);
    assert.match(
      lines[0]!,
      new RegExp(
        `^dkim-relay: the key store directory ${link} is a symbolic link to ${shared}, which others can read \\(mode 1777\\), and is left as it is — if ${shared} is the key store's own directory, run: chmod 700 ${shared}; otherwise set keys.dir`,
      ),
    );
  }
  assert.equal(mode(shared), '1777', 'the link target was chmodded');
});
