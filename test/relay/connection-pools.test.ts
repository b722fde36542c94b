// The SMTP listeners' shared slots, as pure bookkeeping: the admitted and
// stranger pools, one address's share of the stranger pool, and promotion
// of a stranger that logged in.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConnectionPools, type Slot } from '../../src/relay/connection-pools.ts';

const take = (pools: ConnectionPools, address: string, pool: 'admitted' | 'stranger'): Slot | string => {
  const taken = pools.take(address, pool);
  return taken.ok ? taken.slot : taken.why;
};

test('one address holds at most its share of the stranger pool; the pool as a whole stays bounded', () => {
  const pools = new ConnectionPools({ admitted: 2, stranger: 5, strangerPerIp: 2 });
  const a = [take(pools, '192.0.2.1', 'stranger'), take(pools, '192.0.2.1', 'stranger')];
  assert.ok(a.every((s) => typeof s !== 'string'));
  assert.equal(take(pools, '192.0.2.1', 'stranger'), 'address');
  assert.equal(take(pools, '::ffff:192.0.2.1', 'stranger'), 'address', 'IPv4-mapped is the same address');
  for (const address of ['192.0.2.2', '192.0.2.2', '2001:db8:1:2::1']) assert.notEqual(typeof take(pools, address, 'stranger'), 'string');
  assert.equal(take(pools, '2001:db8:1:2::2', 'stranger'), 'full');
  (a[0] as Slot).release();
  (a[0] as Slot).release(); // twice: no effect
  assert.notEqual(typeof take(pools, '192.0.2.1', 'stranger'), 'string', 'a released slot is free again');
  assert.equal(pools.held('stranger'), 5);
});

test('an IPv6 address shares its /64 with its neighbours', () => {
  const pools = new ConnectionPools({ admitted: 2, stranger: 10, strangerPerIp: 2 });
  take(pools, '2001:db8:1:2::1', 'stranger');
  take(pools, '2001:db8:1:2:ffff::9', 'stranger');
  assert.equal(take(pools, '2001:db8:1:2::3', 'stranger'), 'address');
  assert.notEqual(typeof take(pools, '2001:db8:1:3::1', 'stranger'), 'string');
});

test('a stranger that logs in moves to the admitted pool and leaves its share to the next login from its address', () => {
  const pools = new ConnectionPools({ admitted: 1, stranger: 4, strangerPerIp: 1 });
  const first = take(pools, '192.0.2.1', 'stranger') as Slot;
  assert.equal(take(pools, '192.0.2.1', 'stranger'), 'address');
  first.promote();
  assert.deepEqual([pools.held('admitted'), pools.held('stranger')], [1, 0]);
  const second = take(pools, '192.0.2.1', 'stranger') as Slot;
  assert.notEqual(typeof second, 'string');
  second.promote(); // the admitted pool is full: it stays a stranger
  assert.deepEqual([pools.held('admitted'), pools.held('stranger')], [1, 1]);
  first.release();
  second.release();
  assert.deepEqual([pools.held('admitted'), pools.held('stranger')], [0, 0]);
  assert.equal(take(pools, '198.51.100.1', 'admitted') !== 'full', true);
});
