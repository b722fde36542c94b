// The rotation section of the configuration, read from real YAML text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseConfig } from '../../src/config/load.ts';
import { policyFor, rotationAdvice } from '../../src/rotation/policy.ts';
import { expectUserError } from '../keys/support.ts';

const DAY = 86_400_000;

test('rotation is off by default, with the documented waiting times', () => {
  const { rotation } = parseConfig('', 'empty.yaml');
  assert.deepEqual(rotation, { domains: {}, check: '*/15 * * * *', publishFor: '48h', retireAfter: '7d', removeAfter: '30d', stuckAfter: '7d' });
  assert.deepEqual(policyFor(rotation, 'example.com'), {
    interval: null,
    publishFor: 2 * DAY,
    retireAfter: 7 * DAY,
    removeAfter: 30 * DAY,
    stuckAfter: 7 * DAY,
  });
});

test('the example configuration documents every rotation key at its default', () => {
  const text = readFileSync(new URL('../../config/dkim-relay.example.yaml', import.meta.url), 'utf8');
  assert.deepEqual(parseConfig(text, 'example').rotation, parseConfig('', 'empty').rotation);
  for (const key of ['interval', 'domains', 'check', 'publishFor', 'retireAfter', 'removeAfter', 'stuckAfter', 'notify', 'revealPrivateKeys']) {
    assert.match(text, new RegExp(`^  #? ?${key}:`, 'm'), `rotation.${key} is not in the example`);
  }
});

test('a domain overrides the interval and waiting times; "off" turns its rotation off', () => {
  const { rotation } = parseConfig(
    [
      'rotation:',
      '  interval: 90d',
      '  publishFor: 90s',
      '  domains:',
      '    example.org: { interval: 2w, retireAfter: 10d }',
      '    example.net: { interval: "off" }',
    ].join('\n'),
    'test.yaml',
  );
  assert.deepEqual(policyFor(rotation, 'example.com'), {
    interval: 90 * DAY,
    publishFor: 90_000,
    retireAfter: 7 * DAY,
    removeAfter: 30 * DAY,
    stuckAfter: 7 * DAY,
  });
  assert.equal(policyFor(rotation, 'example.org').interval, 14 * DAY);
  assert.equal(policyFor(rotation, 'example.org').retireAfter, 10 * DAY);
  assert.equal(policyFor(rotation, 'example.net').interval, null);
  const delegation = { zone: 'keys.relay.example', selectors: ['sel1', 'sel2'] };
  assert.deepEqual(policyFor(rotation, 'example.com', delegation).delegation, delegation);
});

test('wrong rotation settings are refused with one line saying which key and why', () => {
  const cases: [string, RegExp][] = [
    ['rotation: { check: "every 15 minutes" }', /rotation\.check: must be a cron expression such as "\*\/15 \* \* \* \*"/],
    ['rotation: { check: "0 0 30 2 *" }', /rotation\.check: must be a cron expression/],
    ['rotation: { removeAfter: 0d }', /rotation\.removeAfter: must be a duration above zero/],
    ['rotation: { interval: 3 months }', /rotation\.interval: must be a duration above zero/],
    ['rotation: { notify: postmaster }', /rotation\.notify: must be a mail address/],
    ['rotation: { revealPrivateKeys: "" }', /rotation\.revealPrivateKeys/],
    ['rotation: { schedule: daily }', /unknown key rotation\.schedule/],
    ['rotation: { domains: { example.org: { check: "* * * * *" } } }', /unknown key rotation\.domains\.example\.org\.check/],
    ['signing: { expireAfter: 7d }', /rotation\.retireAfter: must be longer than signing\.expireAfter \(7d\)/],
    ['signing: { expireAfter: 3d }\nrotation: { retireAfter: 72h }', /rotation\.retireAfter: must be longer than signing\.expireAfter \(3d\)/],
    [
      'signing: { expireAfter: 3d }\nrotation: { domains: { example.org: { retireAfter: 2d } } }',
      /rotation\.domains\.example\.org\.retireAfter: must be longer than signing\.expireAfter/,
    ],
  ];
  for (const [yaml, what] of cases) expectUserError(() => parseConfig(yaml, 'test.yaml'), what, /dkim-relay\.example\.yaml/);
  // Longer than x= is fine.
  assert.equal(parseConfig('signing: { expireAfter: 3d }\nqueue: { maxAge: 2d }', 'ok.yaml').rotation.retireAfter, '7d');
  assert.equal(parseConfig('rotation: { check: "*/10 * * * * *" }', 'ok.yaml').rotation.check, '*/10 * * * * *');
});

test('a publishFor shorter than the time between two checks is advice, not an error', () => {
  const short = parseConfig(
    'rotation: { publishFor: 90s, domains: { example.org: { publishFor: 20m }, example.net: { publishFor: 30m } }, check: "*/30 * * * *" }',
    'test.yaml',
  ).rotation;
  assert.deepEqual(rotationAdvice(short), [
    'rotation.publishFor (90s) is shorter than the time between two checks of rotation.check "*/30 * * * *" (1800s): new keys will wait for the next check',
    'rotation.domains.example.org.publishFor (20m) is shorter than the time between two checks of rotation.check "*/30 * * * *" (1800s): new keys will wait for the next check',
  ]);
  assert.deepEqual(rotationAdvice(parseConfig('', 'empty.yaml').rotation), []);
});

test('rotation.check: off turns the scheduler off; an interval then is advice that another relay must run it', () => {
  const off = parseConfig('rotation: { check: off }', 'off.yaml').rotation;
  assert.equal(off.check, 'off');
  assert.deepEqual(rotationAdvice(off), []);
  assert.deepEqual(rotationAdvice(parseConfig('rotation: { check: "off", interval: 90d }', 'off.yaml').rotation), [
    'rotation.interval (90d) is set but rotation.check is "off": this relay starts no rotation; another relay sharing the key store must run the scheduler',
  ]);
  expectUserError(
    () => parseConfig('rotation: { check: never }', 'bad.yaml'),
    /rotation\.check: must be a cron expression such as "\*\/15 \* \* \* \*", or "off"/,
  );
});
