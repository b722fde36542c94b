// Secrets never reach a log line, and a line without one costs no copy.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { withoutSecrets } from '../../src/common/logger.ts';

const LOGGER = fileURLToPath(new URL('../../src/common/logger.ts', import.meta.url));

test('a line without secret fields is handed on as it is, nothing copied', () => {
  const plain = { id: 'x', to: ['a@example.com'], signatures: ['d=example.com'], size: 4096, nested: { user: 'u' } };
  assert.equal(withoutSecrets(plain), plain);
  assert.equal(withoutSecrets(plain).nested, plain.nested);
});

test('secret fields at the top, one level down and under auth are censored; the caller keeps its objects', () => {
  const err = Object.assign(new Error('boom'), { password: 'pw-err' });
  const fields = {
    privateKey: 'pk-top',
    password: 'pw-top',
    pass: 'p-top',
    key: { privateKey: 'pk-1', selector: 's1' },
    auth: { user: 'u', pass: 'p-auth' },
    upstream: { host: 'mx', auth: { user: 'u', pass: 'p-deep' } },
    err,
  };
  const out = withoutSecrets(fields) as typeof fields;
  assert.equal(out.privateKey, '[redacted]');
  assert.equal(out.password, '[redacted]');
  assert.equal(out.pass, '[redacted]');
  assert.deepEqual(out.key, { privateKey: '[redacted]', selector: 's1' });
  assert.deepEqual(out.auth, { user: 'u', pass: '[redacted]' });
  assert.deepEqual(out.upstream, { host: 'mx', auth: { user: 'u', pass: '[redacted]' } });
  assert.ok(out.err instanceof Error);
  assert.equal(out.err.message, 'boom');
  assert.equal(out.err.stack, err.stack);
  assert.equal(out.err.password, '[redacted]');
  assert.equal(fields.upstream.auth.pass, 'p-deep');
  assert.equal(err.password, 'pw-err');
  assert.equal(fields.key.privateKey, 'pk-1');
});

test('the relay logger writes no secret, in JSON and in text', () => {
  for (const format of ['json', 'text']) {
    const script = `
      import { createLogger } from ${JSON.stringify(LOGGER)};
      const logger = createLogger('info', 1, ${JSON.stringify(format)});
      logger.info({ privateKey: 'SECRET-1', upstream: { auth: { user: 'u', pass: 'SECRET-2' }, password: 'SECRET-3' } }, 'config');
      logger.warn({ err: Object.assign(new Error('refused'), { pass: 'SECRET-4' }), id: 'm1' }, 'failed');
      logger.flush();`;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(run.status, 0, run.stderr);
    assert.doesNotMatch(run.stdout, /SECRET-/);
    assert.equal(run.stdout.match(/\[redacted\]/g)?.length, 4, run.stdout);
    assert.match(run.stdout, /refused/);
  }
});
