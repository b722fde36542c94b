// The AUTH failure limiter on an injected clock, and the constant-work password check.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { describe, test } from 'node:test';
import { AuthLimiter, clientKey } from '../../src/access/auth-limiter.ts';
import { CHECKS_AT_ONCE, checkUser, hashPassword } from '../../src/access/passwords.ts';

function limiter(options: { maxClients?: number; maxFailuresPerMinute?: number } = {}) {
  let now = 1_000_000;
  const l = new AuthLimiter({ maxFailures: 3, penaltyMs: 300_000, ...options, now: () => now });
  return { l, advance: (ms: number) => (now += ms) };
}

/** A check reserved and failed; the reservation must be granted. */
function fail(l: AuthLimiter, address: string) {
  const r = l.reserve(address);
  assert.ok(r.ok, `no check granted to ${address}: ${JSON.stringify(r)}`);
  return r.attempt.failed();
}

/** Why a reservation was refused, and in how many ms to retry; 'ok' (and the reservation given back as a success) when granted. */
function refusal(l: AuthLimiter, address: string): string {
  const r = l.reserve(address);
  if (!r.ok) return `${r.why} ${r.retryMs}`;
  r.attempt.succeeded();
  return 'ok';
}

describe('AuthLimiter', () => {
  test('each failure waits longer; the last one blocks the address for the window', () => {
    const { l, advance } = limiter();
    assert.deepEqual(fail(l, '192.0.2.1'), { delayMs: 1000, blocked: false, first: true });
    advance(10_000);
    assert.deepEqual(fail(l, '192.0.2.1'), { delayMs: 2000, blocked: false, first: false });
    advance(2000);
    assert.deepEqual(fail(l, '192.0.2.1'), { delayMs: 0, blocked: true, first: false });
    assert.equal(refusal(l, '192.0.2.1'), 'blocked 300000');
    assert.equal(refusal(l, '192.0.2.2'), 'ok', 'other addresses are not affected');
    advance(299_999);
    assert.equal(refusal(l, '192.0.2.1'), 'blocked 1');
    advance(1);
    assert.equal(fail(l, '192.0.2.1').first, true, 'free again after the window: a new window starts');
  });

  test('the failure is reserved before the check: one check per address at a time, and a parallel burst gets no more than maxFailures checks', () => {
    const { l, advance } = limiter();
    const first = l.reserve('192.0.2.1');
    assert.ok(first.ok);
    assert.equal(refusal(l, '192.0.2.1'), 'busy 1000', 'a second check while the first runs');
    assert.deepEqual(first.attempt.failed(), { delayMs: 1000, blocked: false, first: true });
    assert.equal(refusal(l, '192.0.2.1'), 'busy 1000', 'none while the answer to the failure is held');
    advance(1000);
    // However the attempts are interleaved, at most maxFailures checks are granted in the window.
    let granted = 0;
    for (let round = 0; round < 30; round++) {
      const r = l.reserve('192.0.2.1');
      if (r.ok) {
        granted++;
        r.attempt.failed();
      }
      advance(8000); // the longest wait between tries, 30 rounds within the window
    }
    assert.equal(granted, 2, 'two more after the first: three in all');
  });

  test('a success gives the reserved failure back', () => {
    const { l, advance } = limiter();
    fail(l, '192.0.2.1');
    advance(1000);
    fail(l, '192.0.2.1');
    advance(2000);
    for (let i = 0; i < 5; i++) assert.equal(refusal(l, '192.0.2.1'), 'ok', `login ${i} after two failures`);
    assert.equal(fail(l, '192.0.2.1').blocked, true, 'the third failure still blocks');
  });

  test('failures older than the window are forgotten', () => {
    const { l, advance } = limiter();
    fail(l, '192.0.2.1');
    advance(1000);
    fail(l, '192.0.2.1');
    advance(300_000);
    assert.deepEqual(fail(l, '192.0.2.1'), { delayMs: 1000, blocked: false, first: true });
  });

  test('maxFailuresPerMinute bounds the checks of fresh addresses; a success gives its share back, and the budget refills over the minute', () => {
    const { l, advance } = limiter({ maxFailuresPerMinute: 6 });
    for (let i = 1; i <= 6; i++) fail(l, `198.51.100.${i}`);
    assert.equal(refusal(l, '198.51.100.7'), 'overall 10000', 'one more check in 60 s / 6');
    advance(10_000);
    const granted = l.reserve('198.51.100.7');
    assert.ok(granted.ok);
    granted.attempt.succeeded();
    assert.equal(refusal(l, '198.51.100.8'), 'ok', 'the success gave its share back');
    fail(l, '198.51.100.8');
    assert.match(refusal(l, '198.51.100.9'), /^overall /);
    advance(60_000);
    for (let i = 10; i < 16; i++) fail(l, `198.51.100.${i}`);
    assert.match(refusal(l, '198.51.100.16'), /^overall /, "never more than a minute's worth at once");
  });

  test('memory stays bounded however many addresses fail', () => {
    const { l } = limiter({ maxClients: 100 });
    for (let i = 0; i < 5000; i++) fail(l, `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`);
    assert.equal(l.size, 100);
    assert.equal(refusal(l, '10.0.19.135'), 'busy 1000', 'the most recent are kept'); // i = 4999
  });

  test('IPv6 clients are counted by their /64; IPv4-mapped addresses as IPv4', () => {
    const { l, advance } = limiter();
    for (const address of ['2001:db8:1:2::1', '2001:db8:1:2::2', '2001:db8:1:2:ffff:1:2:3']) {
      fail(l, address);
      advance(8000);
    }
    assert.match(refusal(l, '2001:db8:1:2:aaaa::1'), /^blocked /);
    assert.equal(refusal(l, '2001:db8:1:3::1'), 'ok');
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

describe('password checks at once', () => {
  test('however many checks are asked for at once, at most CHECKS_AT_ONCE scrypt runs are on the thread pool, and every check is answered', async () => {
    const users = new Map([['exchange', await hashPassword('right')]]);
    let running = 0;
    let most = 0;
    const original = crypto.scrypt;
    (crypto as { scrypt: unknown }).scrypt = (...args: unknown[]) => {
      running++;
      most = Math.max(most, running);
      const done = args[4] as (err: Error | null, key: Buffer) => void;
      return (original as (...a: unknown[]) => void)(...args.slice(0, 4), (err: Error | null, key: Buffer) => {
        running--;
        done(err, key);
      });
    };
    syncBuiltinESMExports();
    try {
      const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => checkUser(users, 'exchange', i === 11 ? 'right' : `guess ${i}`)));
      assert.deepEqual(answers, [...Array(11).fill(false), true]);
    } finally {
      (crypto as { scrypt: unknown }).scrypt = original;
      syncBuiltinESMExports();
    }
    assert.equal(most, CHECKS_AT_ONCE);
  });
});
