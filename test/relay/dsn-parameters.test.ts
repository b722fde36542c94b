import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dsnProblem } from '../../src/relay/dsn-parameters.ts';

test('well-formed RFC 3461 parameters are taken', () => {
  assert.equal(dsnProblem({ RET: 'HDRS', ENVID: 'QQ314159' }), null);
  assert.equal(dsnProblem({ NOTIFY: 'SUCCESS,FAILURE', ORCPT: 'rfc822;bob@example.net' }), null);
  assert.equal(dsnProblem({ SIZE: '100', BODY: '8BITMIME' }), null);
});

test('values out of the RFC are refused with the rule they break', () => {
  assert.match(dsnProblem({ RET: 'ALL' })!, /RET must be FULL or HDRS/);
  assert.match(dsnProblem({ ENVID: 'x'.repeat(101) })!, /ENVID/);
  assert.match(dsnProblem({ ENVID: 'with space' })!, /ENVID/);
  assert.match(dsnProblem({ ORCPT: 'bob@example.net' })!, /ORCPT/);
  assert.match(dsnProblem({ ORCPT: `rfc822;${'a'.repeat(500)}` })!, /ORCPT/);
  assert.match(dsnProblem({ NOTIFY: 'NEVER,FAILURE' })!, /NOTIFY/);
  assert.match(dsnProblem({ NOTIFY: 'SOMETIMES' })!, /NOTIFY/);
});
