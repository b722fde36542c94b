// The AUTH failure limiter on an injected clock, and the constant-work password check.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { describe, test } from 'node:test';
import { AuthLimiter, clientKey } from '../../src/relay/auth-limiter.ts';
import { checkUser, hashPassword } from '../../src/relay/passwords.ts';

function limiter(maxClients?: number) {
  let now = 1_000_000;
  const l = new AuthLimiter({ maxFailures: 3, penaltyMs: 300_000, maxClients, now: () => now });
  return { l, advance: (ms: number) => (now += ms) };
}

describe('AuthLimiter', () => {
  test('each failure waits longer; the last one blocks the address for the window', () => {
    const { l, advance } = limiter();
    assert.deepEqual(l.fail('192.0.2.1'), { delayMs: 1000, blocked: false, first: true });
    advance(10_000);
    assert.deepEqual(l.fail('192.0.2.1'), { delayMs: 2000, blocked: false, first: false });
    assert.equal(l.refusedFor('192.0.2.1'), 0, 'may still try');
    assert.deepEqual(l.fail('192.0.2.1'), { delayMs: 0, blocked: true, first: false });
    assert.equal(l.refusedFor('192.0.2.1'), 300_000);
    assert.equal(l.refusedFor('192.0.2.2'), 0, 'other addresses are not affected');
    advance(299_999);
    assert.equal(l.refusedFor('192.0.2.1'), 1);
    advance(1);
    assert.equal(l.refusedFor('192.0.2.1'), 0, 'free again after the window');
    assert.equal(l.fail('192.0.2.1').first, true, 'a new window starts');
  });

  test('failures older than the window are forgotten', () => {
    const { l, advance } = limiter();
    l.fail('192.0.2.1');
    l.fail('192.0.2.1');
    advance(300_000);
    assert.deepEqual(l.fail('192.0.2.1'), { delayMs: 1000, blocked: false, first: true });
  });

  test('memory stays bounded however many addresses fail', () => {
    const { l } = limiter(100);
    for (let i = 0; i < 5000; i++) l.fail(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`);
    assert.equal(l.size, 100);
    assert.equal(l.fail('10.0.19.135').first, false, 'the most recent are kept'); // i = 4999
  });

  test('IPv6 clients are counted by their /64; IPv4-mapped addresses as IPv4', () => {
    const { l } = limiter();
    for (const address of ['2001:db8:1:2::1', '2001:db8:1:2::2', '2001:db8:1:2:ffff:1:2:3']) l.fail(address);
    assert.ok(l.refusedFor('2001:db8:1:2:aaaa::1') > 0);
    assert.equal(l.refusedFor('2001:db8:1:3::1'), 0);
    assert.equal(clientKey('::ffff:192.0.2.7'), '192.0.2.7');
  });
});

describe('checkUser', () => {
  test('an unknown user name costs the same scrypt work as a known one', async () => {
    const users = new Map([['exchange', await hashPassword('right')]]);
    const calls: { N?: number; r?: number; p?: number }[] = [];
    const original = crypto.scrypt;
    // Count scrypt runs through the module the password code imports from.
    (crypto as { scrypt: unknown }).scrypt = (...args: unknown[]) => {
      calls.push(args[3] as { N: number });
      return (original as (...a: unknown[]) => void)(...args);
    };
    syncBuiltinESMExports();
    try {
      assert.equal(await checkUser(users, 'exchange', 'wrong'), false);
      assert.equal(await checkUser(users, 'nobody', 'wrong'), false);
      assert.equal(await checkUser(users, 'nobody', ''), false);
      assert.equal(await checkUser(users, 'exchange', 'right'), true);
    } finally {
      (crypto as { scrypt: unknown }).scrypt = original;
      syncBuiltinESMExports();
    }
    assert.equal(calls.length, 4, 'one scrypt run per check, known name or not');
    for (const c of calls) assert.deepEqual([c.N, c.r, c.p], [16384, 8, 1]);
  });
});
