// The key lifecycle state machine: allowed steps, refusals, and the audit data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyTransitions, creation, decide, type KeyState, type LifecycleKey } from '../../src/keys/lifecycle.ts';

const AT = new Date('2026-11-28T03:15:00.000Z');
const CLI = { at: AT, by: 'cli' as const, why: 'keys command' };

function key(id: number, state: KeyState, over: Partial<LifecycleKey> = {}): LifecycleKey {
  return {
    id,
    domain: 'example.com',
    selector: `s${id}`,
    algorithm: 'rsa',
    state,
    createdAt: '2026-01-01T00:00:00.000Z',
    activatedAt: null,
    retiredAt: null,
    revokedAt: null,
    removedAt: null,
    ...over,
  };
}

test('the forward path: pending → active → retiring → revoked → removed, each with its timestamp', () => {
  let keys = [key(1, 'pending')];
  const steps: KeyState[] = ['active', 'retiring', 'revoked', 'removed'];
  for (const [i, to] of steps.entries()) {
    const at = new Date(AT.getTime() + i * 86_400_000);
    const d = decide(keys, 1, to, { at, by: 'scheduler', why: `step ${i}` });
    assert.ok(d.ok, `refused ${to}: ${d.ok ? '' : d.reason}`);
    assert.deepEqual(d.transitions, [
      { keyId: 1, domain: 'example.com', selector: 's1', from: keys[0]!.state, to, at: at.toISOString(), by: 'scheduler', why: `step ${i}` },
    ]);
    keys = applyTransitions(keys, d.transitions);
  }
  assert.deepEqual(
    { ...keys[0]! },
    {
      ...key(1, 'removed'),
      activatedAt: '2026-11-28T03:15:00.000Z',
      retiredAt: '2026-11-29T03:15:00.000Z',
      revokedAt: '2026-11-30T03:15:00.000Z',
      removedAt: '2026-12-01T03:15:00.000Z',
    },
  );
});

test('activating a key retires the active key of its algorithm in the same decision, and only that one', () => {
  const keys = [
    key(1, 'active', { activatedAt: '2026-01-02T00:00:00.000Z' }),
    key(2, 'active', { algorithm: 'ed25519' }),
    key(3, 'active', { domain: 'example.org' }),
    key(4, 'pending'),
  ];
  const d = decide(keys, 4, 'active', CLI);
  assert.ok(d.ok);
  assert.deepEqual(
    d.transitions.map((t) => [t.keyId, t.from, t.to, t.why]),
    [
      [1, 'active', 'retiring', 'replaced by s4'],
      [4, 'pending', 'active', 'keys command'],
    ],
  );
  const after = applyTransitions(keys, d.transitions);
  assert.deepEqual(
    after.map((k) => k.state),
    ['retiring', 'active', 'active', 'active'],
  );
  assert.equal(after.filter((k) => k.domain === 'example.com' && k.algorithm === 'rsa' && k.state === 'active').length, 1);
});

test('a retiring key can be taken back; it retires anew later', () => {
  const keys = [key(1, 'retiring', { retiredAt: '2026-11-01T00:00:00.000Z' }), key(2, 'active')];
  const d = decide(keys, 1, 'active', CLI);
  assert.ok(d.ok);
  const after = applyTransitions(keys, d.transitions);
  assert.deepEqual(
    after.map((k) => [k.state, k.retiredAt]),
    [
      ['active', null],
      ['retiring', AT.toISOString()],
    ],
  );
});

test('a step to the state the key is in is accepted with nothing to do', () => {
  assert.deepEqual(decide([key(1, 'active')], 1, 'active', CLI), { ok: true, transitions: [] });
});

test('refused steps come back as a reason and a hint, never an exception', () => {
  const cases: [KeyState, KeyState, RegExp, RegExp][] = [
    ['revoked', 'active', /s1 for example\.com is revoked and never signs again/, /generate a new key/],
    ['revoked', 'retiring', /revoked and never signs again/, /generate a new key/],
    ['removed', 'active', /was removed/, /generate a new key/],
    ['removed', 'revoked', /was removed/, /gone for good/],
    ['active', 'revoked', /is still signing/, /keys retire --domain example\.com --selector s1/],
    ['active', 'removed', /is still signing/, /retire and revoke/],
    ['retiring', 'removed', /is retiring, not revoked/, /revoke it first/],
    ['pending', 'retiring', /is pending, not active/, /only an active key can retire/],
    ['retiring', 'pending', /cannot go from retiring to pending/, /pending → active → retiring → revoked → removed/],
  ];
  for (const [from, to, reason, hint] of cases) {
    const d = decide([key(1, from)], 1, to, CLI);
    assert.equal(d.ok, false, `${from} → ${to} was allowed`);
    if (!d.ok) {
      assert.match(d.reason, reason, `${from} → ${to}`);
      assert.match(d.hint, hint, `${from} → ${to}`);
    }
  }
  const missing = decide([key(1, 'pending')], 9, 'active', CLI);
  assert.deepEqual(missing, { ok: false, reason: 'no key with id 9', hint: 'see `dkim-relay keys list`' });
});

test("a key's creation is its first event, from no state", () => {
  assert.deepEqual(creation(key(5, 'pending'), { at: AT, by: 'scheduler', why: 'rotation: s1 is 90 days old' }), {
    keyId: 5,
    domain: 'example.com',
    selector: 's5',
    from: null,
    to: 'pending',
    at: AT.toISOString(),
    by: 'scheduler',
    why: 'rotation: s1 is 90 days old',
  });
});

test('applying a transition to a key in another state is a programming error, caught', () => {
  const d = decide([key(1, 'pending')], 1, 'active', CLI);
  assert.ok(d.ok);
  assert.throws(() => applyTransitions([key(1, 'revoked')], d.transitions), /pending → active of key 1 applied to a revoked key/);
});

test("activating a client's key retires the active key of its own chain only, not the domain's or another client's", () => {
  const keys = [
    key(1, 'active'),
    key(2, 'active', { client: 'scanner' }),
    key(3, 'active', { client: 'crm' }),
    key(4, 'pending', { client: 'scanner' }),
    key(5, 'pending'),
  ];
  const scanner = decide(keys, 4, 'active', CLI);
  assert.ok(scanner.ok);
  assert.deepEqual(
    scanner.transitions.map((t) => [t.keyId, t.to]),
    [
      [2, 'retiring'],
      [4, 'active'],
    ],
  );
  const own = decide(keys, 5, 'active', CLI);
  assert.ok(own.ok);
  assert.deepEqual(
    own.transitions.map((t) => [t.keyId, t.to]),
    [
      [1, 'retiring'],
      [5, 'active'],
    ],
  );
});
