// Where direct delivery may connect: never inward unless allowed, never to
// the relay's own listeners.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isRelayItself, targetVerdict, type RelaySelf } from '../../src/delivery/mx-targets.ts';
import { NetworkList } from '../../src/common/networks.ts';

const self: RelaySelf = { listeners: [{ host: '192.0.2.10', port: 25 }], localAddresses: ['192.0.2.10', '198.51.100.7', '2001:db8::7', 'fe80::1'] };
const none = new NetworkList([]);
const verdict = (address: string, allowed = none, port = 25) => {
  const v = targetVerdict(address, port, self, allowed);
  return v.ok ? 'ok' : `${v.kind}: ${v.reason}`;
};

describe('targetVerdict', () => {
  test('inward addresses are refused, each with its reason', () => {
    assert.deepEqual(
      [
        '10.9.9.9',
        '172.16.0.1',
        '192.168.1.1',
        '169.254.169.254',
        '127.0.0.5',
        '0.0.0.0',
        '224.0.0.1',
        '255.255.255.255',
        '::1',
        '::',
        'fe80::1',
        'fc00::1',
        'fd12::1',
        'ff02::1',
        '::ffff:10.9.9.9',
        '::ffff:169.254.169.254',
        '::ffff:127.0.0.1',
        '198.51.100.7',
        '2001:db8::7',
        'not-an-address',
      ].map((a) => verdict(a)),
      [
        'inward: 10.9.9.9 is a private address (RFC 1918)',
        'inward: 172.16.0.1 is a private address (RFC 1918)',
        'inward: 192.168.1.1 is a private address (RFC 1918)',
        'inward: 169.254.169.254 is a link-local address',
        'inward: 127.0.0.5 is a loopback address',
        'inward: 0.0.0.0 is the unspecified address',
        'inward: 224.0.0.1 is a multicast address',
        'inward: 255.255.255.255 is the broadcast address',
        'inward: ::1 is a loopback address',
        'inward: :: is the unspecified address',
        'inward: fe80::1 is a link-local address',
        'inward: fc00::1 is a unique local address (fc00::/7)',
        'inward: fd12::1 is a unique local address (fc00::/7)',
        'inward: ff02::1 is a multicast address',
        'inward: 10.9.9.9 is a private address (RFC 1918)',
        'inward: 169.254.169.254 is a link-local address',
        'inward: 127.0.0.1 is a loopback address',
        'inward: 198.51.100.7 is an address of this host',
        'inward: 2001:db8::7 is an address of this host',
        'inward: not-an-address is not an IP address',
      ],
    );
  });

  test('public addresses go through; allowNetworks lets inward ones through', () => {
    assert.equal(verdict('192.0.2.99'), 'ok');
    assert.equal(verdict('2001:db8::99'), 'ok');
    const allowed = new NetworkList(['10.0.0.0/8', '127.0.0.5', 'fd00::/8', '198.51.100.7']);
    assert.deepEqual(
      ['10.9.9.9', '::ffff:10.9.9.9', '127.0.0.5', 'fd12::1', '198.51.100.7'].map((a) => verdict(a, allowed)),
      ['ok', 'ok', 'ok', 'ok', 'ok'],
    );
    assert.equal(verdict('127.0.0.6', allowed), 'inward: 127.0.0.6 is a loopback address');
  });

  test('a listener of the relay itself is a loop, allowed or not', () => {
    const all = new NetworkList(['0.0.0.0/0', '::/0']);
    assert.equal(verdict('192.0.2.10', all), "loop: 192.0.2.10 port 25 is this relay's own listener");
    assert.equal(verdict('::ffff:192.0.2.10', all), "loop: 192.0.2.10 port 25 is this relay's own listener");
    // Another port of the same address is another service.
    assert.equal(verdict('192.0.2.10', all, 587), 'ok');
  });
});

describe('isRelayItself', () => {
  test('a listener on 0.0.0.0 or :: is every address of this host, loopback included', () => {
    for (const host of ['0.0.0.0', '::']) {
      const wild: RelaySelf = { listeners: [{ host, port: 2525 }], localAddresses: ['198.51.100.7'] };
      assert.deepEqual(
        ['127.0.0.1', '127.0.0.9', '::1', '198.51.100.7', '::ffff:198.51.100.7', '192.0.2.1'].map((a) => isRelayItself(a, 2525, wild)),
        [true, true, true, true, true, false],
        host,
      );
      assert.equal(isRelayItself('127.0.0.1', 25, wild), false);
    }
  });
});
