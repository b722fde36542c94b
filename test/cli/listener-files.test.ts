// A broken listen.tls stops what listens (serve, config check), not the
// commands an administrator uses to look around meanwhile.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../helpers/tmp.ts';
import { dkimRelay } from './support.ts';

test('keys and queue commands run with listen.tls files missing; config check and serve refuse them', async () => {
  const dir = tempDir();
  const config = join(dir, 'relay.yaml');
  writeFileSync(
    config,
    [
      `keys: {dir: ${join(dir, 'keys')}}`,
      `queue: {dir: ${join(dir, 'spool')}}`,
      'metrics: {listen: "127.0.0.1:0"}',
      'rotation: {check: "off"}',
      `listen: {port: 0, tls: {key: ${join(dir, 'missing.key')}, cert: ${join(dir, 'missing.crt')}}}`,
      '',
    ].join('\n'),
  );
  const generated = await dkimRelay(['--config', config, 'keys', 'generate', '--domain', 'example.com', '--activate'], dir);
  assert.equal(generated.code, 0, generated.stderr);
  const listed = await dkimRelay(['--config', config, 'keys', 'list', '--json'], dir);
  assert.equal(listed.code, 0, listed.stderr);
  assert.equal((JSON.parse(listed.stdout) as { domain: string }[])[0]!.domain, 'example.com');
  const queue = await dkimRelay(['--config', config, 'queue', 'list'], dir);
  assert.equal(queue.code, 0, queue.stderr);

  for (const command of [['config', 'check'], ['serve']]) {
    const run = await dkimRelay(['--config', config, ...command], dir);
    assert.equal(run.code, 2, `${command.join(' ')}: ${run.stdout}${run.stderr}`);
    assert.match(run.stderr, /missing\.key/, command.join(' '));
  }
});
