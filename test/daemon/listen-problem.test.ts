// What the administrator reads when listen.host:listen.port cannot be bound.
// The address case runs for real in test/cli/serve-cli.test.ts; a name that
// does not resolve would need a resolver, so its errors are built here as
// Node.js reports them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UserError } from '../../src/common/errors.ts';
import { listenProblem } from '../../src/daemon/daemon.ts';

const failure = (code: string) => Object.assign(new Error(`listen ${code}`), { code });

test('each bind failure names the setting and how to mend it', () => {
  const cases: [string, RegExp, RegExp][] = [
    ['EADDRINUSE', /^127\.0\.0\.1:25 is already in use$/, /listen\.port/],
    ['EACCES', /^no permission to listen on 127\.0\.0\.1:25$/, /CAP_NET_BIND_SERVICE/],
    ['EADDRNOTAVAIL', /^listen\.host 127\.0\.0\.1: no such address on this machine$/, /ip -brief address/],
    ['ENOTFOUND', /^listen\.host 127\.0\.0\.1 does not resolve to an address$/, /IP address of this machine/],
    ['EAI_AGAIN', /^listen\.host 127\.0\.0\.1 does not resolve to an address$/, /\/etc\/hosts/],
  ];
  for (const [code, message, hint] of cases) {
    const err = listenProblem(failure(code), '127.0.0.1', 25);
    assert.ok(err instanceof UserError, code);
    assert.match(err.message, message, code);
    assert.match(err.hint ?? '', hint, code);
  }
});

test('any other failure is passed on as it is: a bug is not dressed as a setting', () => {
  const err = failure('EINVAL');
  assert.equal(listenProblem(err, '127.0.0.1', 25), err);
});
