// The real CLI with an upstream at 127.0.0.1 over TLS: no SNI for an address
// (RFC 6066 §3), so Node prints no DeprecationWarning into the log.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { NODE, BIN } from '../cli/support.ts';
import { selfSignedCert, send, tempDir } from '../helpers/relay-harness.ts';
import { MESSAGE, startUpstream } from './upstreams.ts';

test('serve delivers over TLS to 127.0.0.1 and stderr has no DeprecationWarning', async () => {
  const dir = tempDir();
  const { key, cert } = selfSignedCert(dir.path);
  const up = await startUpstream({ secure: true, key: readFileSync(key), cert: readFileSync(cert) });
  const config = join(dir.path, 'relay.yaml');
  writeFileSync(
    config,
    [
      `keys: {dir: ${join(dir.path, 'keys')}}`,
      'listen: {port: 0, hostname: relay.test}',
      'metrics: {listen: "127.0.0.1:0"}',
      `delivery: {mode: sync, upstream: {type: smtp, host: 127.0.0.1, port: ${up.port}, secure: true, rejectUnauthorized: false, timeoutSeconds: 5}}`,
      'rotation: {check: "off"}',
      '',
    ].join('\n'),
  );
  const child = spawn(NODE, [BIN, 'serve', '--config', config], {
    cwd: dir.path,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    const until = Date.now() + 20_000;
    while (!/"relay listening"/.test(stdout + stderr) && child.exitCode === null && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    const port = Number(/"plain":(\d+)/.exec(stdout + stderr)?.[1]);
    assert.ok(port > 0, `the relay did not start:\n${stdout}${stderr}`);
    const result = await send({ port, from: 'a@example.com', to: ['b@example.net'], raw: MESSAGE });
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.equal(up.received.length, 1);
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.doesNotMatch(stderr + stdout, /DeprecationWarning|TLS ServerName/);
    assert.match(stdout + stderr, /"upstream extensions learned"/, 'the TLS probe ran too');
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await up.close();
    dir.remove();
  }
});
