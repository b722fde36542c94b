import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LISTEN_ADDRESS, parseHostPort } from '../../src/common/host-port.ts';
import { DNS_SERVER_ADDRESS } from '../../src/dns/nameserver.ts';

test('a listener needs IP:PORT; port 0 asks for any free port; brackets only around IPv6', () => {
  assert.deepEqual(parseHostPort('127.0.0.1:9125', LISTEN_ADDRESS), { host: '127.0.0.1', port: 9125 });
  assert.deepEqual(parseHostPort('[::1]:0', LISTEN_ADDRESS), { host: '::1', port: 0 });
  for (const bad of ['127.0.0.1', '::1', '::1:9125', '[127.0.0.1]:9125', 'localhost:9125', '127.0.0.1:65536', '127.0.0.1:']) {
    assert.equal(parseHostPort(bad, LISTEN_ADDRESS), undefined, bad);
  }
});

test('a DNS server is asked on port 53 unless the text names another; an IPv4 address may stand in brackets', () => {
  assert.deepEqual(parseHostPort('192.0.2.53', DNS_SERVER_ADDRESS), { host: '192.0.2.53', port: 53 });
  assert.deepEqual(parseHostPort('2001:db8::53', DNS_SERVER_ADDRESS), { host: '2001:db8::53', port: 53 });
  assert.deepEqual(parseHostPort('[192.0.2.53]:5353', DNS_SERVER_ADDRESS), { host: '192.0.2.53', port: 5353 });
  assert.deepEqual(parseHostPort('[2001:db8::53]:5353', DNS_SERVER_ADDRESS), { host: '2001:db8::53', port: 5353 });
  for (const bad of ['ns1.example.com', '192.0.2.53:0', '192.0.2.53:5:6', ' 192.0.2.53', '300.1.1.1', '']) {
    assert.equal(parseHostPort(bad, DNS_SERVER_ADDRESS), undefined, bad);
  }
});
