// What `npm pack` ships, and the CLI run from where `npm install -g` puts
// it: under a node_modules folder, where Node.js does not strip TypeScript
// types itself. The dependencies come from this checkout (a symlink), so the
// test needs no registry.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { NODE, ROOT } from '../cli/support.ts';
import { tempDir } from '../helpers/tmp.ts';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { cwd: options.cwd ?? ROOT, env: options.env ?? process.env, encoding: 'utf8', timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') return reject(new Error(`${file} ${args.join(' ')}: ${err.message}\n${stderr}`));
        resolve({ code: child.exitCode, stdout, stderr });
      },
    );
    child.stdin?.end(options.input ?? '');
  });
}

const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  private?: boolean;
  bin: Record<string, string>;
  dependencies: Record<string, string>;
};

test('npm pack ships the program, its man page and examples, and no tests', async () => {
  assert.equal(manifest.private, undefined, 'a private package cannot be installed with npm install -g');
  assert.deepEqual(manifest.bin, { 'dkim-relay': 'bin/dkim-relay.js' });
  // npm install -g must bring the Node.js 24 the CLI runs on.
  assert.ok(manifest.dependencies.node, 'node is not a production dependency');

  const r = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts']);
  assert.equal(r.code, 0, r.stderr);
  const files = (JSON.parse(r.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
  for (const path of [
    'bin/dkim-relay.js',
    'bin/strip-types.js',
    'src/cli/main.ts',
    'src/signing/crypto-worker.ts',
    'man/dkim-relay.1',
    'config/dkim-relay.example.yaml',
    'systemd/dkim-relay.service',
    'README.md',
  ]) {
    assert.ok(files.includes(path), `${path} is not in the tarball`);
  }
  const stray = files.filter((f) => /^(test|bench|packaging|node_modules)\//.test(f) || f === 'package-lock.json');
  assert.deepEqual(stray, []);
});

test('the CLI installed under node_modules runs its TypeScript, worker threads included', async () => {
  const dir = tempDir('dkim-relay-npm-');
  const packed = await run('npm', ['pack', '--ignore-scripts', '--pack-destination', dir]);
  assert.equal(packed.code, 0, packed.stderr);
  const tarball = join(dir, packed.stdout.trim().split('\n').at(-1)!);
  // Where `npm install -g` puts it: <prefix>/lib/node_modules/dkim-relay.
  const installed = join(dir, 'lib', 'node_modules', 'dkim-relay');
  mkdirSync(installed, { recursive: true });
  const untar = await run('tar', ['-xzf', tarball, '-C', installed, '--strip-components=1']);
  assert.equal(untar.code, 0, untar.stderr);
  symlinkSync(join(ROOT, 'node_modules'), join(installed, 'node_modules'));

  const env = { PATH: process.env.PATH, HOME: dir, LANG: 'C.UTF-8', NODE_COMPILE_CACHE: join(dir, 'cache') };
  const cli = (args: string[], input?: string) =>
    run(NODE, [join(installed, 'bin', 'dkim-relay.js'), '--config', '/dev/null', ...args], { cwd: dir, env, input });

  const version = await cli(['--version']);
  assert.equal(version.code, 0, version.stderr);
  assert.equal(version.stderr, '', 'nothing but the version is printed');
  const key = await cli(['keys', 'generate', '--domain', 'example.com', '--activate']);
  assert.equal(key.code, 0, key.stderr);
  // sign and verify run the crypto worker threads.
  const signed = await cli(['sign'], 'From: a@example.com\r\nTo: b@example.net\r\nSubject: packed\r\n\r\nHello\r\n');
  assert.equal(signed.code, 0, signed.stderr);
  const verified = await cli(['verify'], signed.stdout);
  assert.equal(verified.code, 0, verified.stderr);
  assert.match(verified.stdout, /^pass d=example\.com /);
});
