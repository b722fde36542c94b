// The dns section of the configuration: defaults, the documented example, and
// a resolver address that is not one.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import { UserError } from '../../src/common/errors.ts';

const ROOT = join(import.meta.dirname, '..', '..');

test('dns defaults: the system resolver, 3 s', () => {
  assert.deepEqual(parseConfig('{}', 'test').dns, { resolvers: [], timeoutSeconds: 3, publish: [] });
});

test('the example configuration documents the dns section with its defaults', () => {
  const config = parseConfig(readFileSync(join(ROOT, 'config', 'dkim-relay.example.yaml'), 'utf8'), 'example');
  assert.deepEqual(config.dns, { resolvers: [], timeoutSeconds: 3, publish: [] });
});

test('dns.resolvers takes IP[:PORT] and refuses host names', () => {
  assert.deepEqual(parseConfig('dns:\n  resolvers: ["192.0.2.53", "[2001:db8::53]:5353"]\n', 'test').dns.resolvers, ['192.0.2.53', '[2001:db8::53]:5353']);
  assert.throws(
    () => parseConfig('dns:\n  resolvers: [ns1.example.com]\n', 'test'),
    (err: unknown) => err instanceof UserError && /dns\.resolvers/.test(err.toLine()),
  );
  assert.throws(() => parseConfig('dns:\n  timeoutSeconds: 0\n', 'test'), UserError);
});
