// The command publisher runs a real program with the changes as JSON on stdin.
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { commandPublisher } from '../../../src/dns/publish/command.ts';
import type { RecordChange } from '../../../src/dns/publish/change.ts';
import { tempDir } from '../../helpers/tmp.ts';

const NODE = process.execPath;
const changes: RecordChange[] = [
  { action: 'delete', name: 's1._domainkey.example.com', type: 'TXT', ttl: 3600, value: 'v=DKIM1; k=rsa; p=AAAA', strings: ['v=DKIM1; k=rsa; ', 'p=AAAA'] },
  { action: 'add', name: 's1._domainkey.example.com', type: 'TXT', ttl: 3600, value: 'v=DKIM1; k=rsa; p=', strings: ['v=DKIM1; k=rsa; ', 'p='] },
];

function script(dir: string, name: string, body: string): string {
  const file = join(dir, name);
  writeFileSync(file, body);
  chmodSync(file, 0o700);
  return file;
}

describe('command publisher', () => {
  const dir = tempDir();

  test('gives the program {zone, changes} as JSON on stdin, with its arguments and no shell', async () => {
    const out = join(dir, 'stdin.json');
    const recorder = script(
      dir,
      'record.mjs',
      `
      import { writeFileSync } from 'node:fs';
      let input = '';
      process.stdin.on('data', (c) => (input += c));
      process.stdin.on('end', () => writeFileSync(process.argv[2], JSON.stringify({ argv: process.argv.slice(3), stdin: JSON.parse(input) })));
    `,
    );
    const publisher = commandPublisher({ argv: [NODE, recorder, out, '--zone=$ZONE', 'a b; rm -rf /'], timeoutMs: 5000 });
    assert.deepEqual(await publisher.publish('example.com', changes), { status: 'published' });
    const seen = JSON.parse(readFileSync(out, 'utf8'));
    assert.deepEqual(seen.argv, ['--zone=$ZONE', 'a b; rm -rf /']);
    assert.deepEqual(seen.stdin, { zone: 'example.com', changes });
  });

  test('a non-zero exit fails with the last line of its stderr', async () => {
    const failing = script(
      dir,
      'fail.sh',
      '#!/bin/sh\ncat >/dev/null\necho "connecting to api.example" >&2\necho "403 Forbidden: token lacks dns:edit" >&2\nexit 3\n',
    );
    const result = await commandPublisher({ argv: [failing], timeoutMs: 5000 }).publish('example.com', changes);
    assert.deepEqual(result, { status: 'failed', reason: `${failing} for zone example.com failed: exit status 3: 403 Forbidden: token lacks dns:edit` });
  });

  test('a program that does not read its input and fails still reports', async () => {
    const failing = script(dir, 'deaf.sh', '#!/bin/sh\necho "no input read" >&2\nexit 1\n');
    const big = Array.from({ length: 2000 }, () => changes[0]!);
    const result = await commandPublisher({ argv: [failing], timeoutMs: 5000 }).publish('example.com', big);
    assert.deepEqual(result, { status: 'failed', reason: `${failing} for zone example.com failed: exit status 1: no input read` });
  });

  test('a program that runs too long is stopped at the timeout', async () => {
    const slow = script(dir, 'slow.sh', '#!/bin/sh\nsleep 30\n');
    const started = Date.now();
    const result = await commandPublisher({ argv: [slow], timeoutMs: 300 }).publish('example.com', changes);
    assert.ok(result.status === 'failed');
    assert.match(result.reason, /no result within 0\.3s \(stopped\) — raise dns\.publish\[\]\.timeoutSeconds/);
    assert.ok(Date.now() - started < 10_000, 'the child was killed, not waited for');
  });

  test('a program that does not exist is a failure, not a crash', async () => {
    const result = await commandPublisher({ argv: [join(dir, 'absent')], timeoutMs: 1000 }).publish('example.com', changes);
    assert.deepEqual(result, { status: 'failed', reason: `${join(dir, 'absent')} for zone example.com failed: no such program — check dns.publish[].command` });
  });
});
