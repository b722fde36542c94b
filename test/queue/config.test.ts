// The queue section of the configuration, read from real YAML text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseConfig } from '../../src/config/load.ts';
import { DEFAULT_RETRY_POLICY, retryPolicy } from '../../src/queue/backoff.ts';
import { expectUserError } from '../keys/support.ts';

test('the queue defaults: spool/, first retry after 1m, at most 1h apart, bounce after 5d, no delay warning', () => {
  const { queue } = parseConfig('', 'empty.yaml');
  assert.deepEqual(queue, { dir: 'spool', retryAfter: '1m', maxRetryInterval: '1h', maxAge: '5d', corruptRetention: '30d' });
  assert.deepEqual(retryPolicy(queue), DEFAULT_RETRY_POLICY);
});

test('the example configuration documents every queue key at its default', () => {
  const text = readFileSync(new URL('../../config/dkim-relay.example.yaml', import.meta.url), 'utf8');
  assert.deepEqual(parseConfig(text, 'example').queue, parseConfig('', 'empty').queue);
  for (const key of ['dir', 'retryAfter', 'maxRetryInterval', 'maxAge', 'delayWarning', 'corruptRetention']) {
    assert.match(text, new RegExp(`^queue:[\\s\\S]*?^  #? ?${key}:`, 'm'), `queue.${key} is not in the example`);
  }
});

test('wrong queue settings are refused with one line saying which key and why', () => {
  const cases: [string, RegExp][] = [
    ['queue: { retryAfter: 0m }', /queue\.retryAfter: must be a duration above zero/],
    ['queue: { maxAge: forever }', /queue\.maxAge: must be a duration above zero/],
    ['queue: { retryAfter: 2h }', /queue\.maxRetryInterval: must be at least retryAfter \(2h\)/],
    ['queue: { delayWarning: 5d }', /queue\.delayWarning: must be shorter than maxAge \(5d\)/],
    ['queue: { spool: /var/spool }', /unknown key queue\.spool/],
    ['queue: { corruptRetention: never }', /queue\.corruptRetention: must be a duration above zero/],
  ];
  for (const [yaml, what] of cases) expectUserError(() => parseConfig(yaml, 'test.yaml'), what, /dkim-relay\.example\.yaml/);
  assert.equal(parseConfig('queue: { delayWarning: 4h, maxAge: 3d }', 'ok.yaml').queue.delayWarning, '4h');
});
