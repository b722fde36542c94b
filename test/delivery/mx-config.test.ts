// The `mx` upstream's settings, read from real YAML text.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import { createUpstream } from '../../src/delivery/create-upstream.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { expectUserError } from '../keys/support.ts';

test('the defaults: port 25, no TLS required, 20 connections, 3 per domain, always 7-bit', () => {
  const { delivery } = parseConfig('delivery: {upstream: {type: mx}}', 'mx.yaml');
  assert.deepEqual(delivery.upstream, {
    type: 'mx',
    port: 25,
    allowNetworks: [],
    timeoutSeconds: 60,
    requireTLS: false,
    maxConnections: 20,
    maxConnectionsPerDomain: 3,
    dualSign: true,
    eightBitMime: false,
  });
  const upstream = createUpstream(delivery.upstream, silentLogger());
  assert.deepEqual([upstream.name, upstream.traits], ['mx port 25', { dualSign: true, eightBitMime: false, smtpUtf8: false }]);
});

test("the example's mx block, uncommented, is valid and shows the defaults", () => {
  const text = readFileSync(new URL('../../config/dkim-relay.example.yaml', import.meta.url), 'utf8');
  const block = /^ {2}# upstream:\n {2}# {3}type: mx\n(?: {2}#.*\n)+/m.exec(text)?.[0];
  assert.ok(block, 'the example has a commented mx upstream');
  const yaml = `delivery:\n${block
    .replace(/^ {2}# ?/gm, '  ')
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n')}`;
  const upstream = parseConfig(yaml, 'example').delivery.upstream;
  const { resolver, heloName, ...rest } = upstream as typeof upstream & { resolver?: string[]; heloName?: string };
  assert.deepEqual([resolver, heloName], [['192.0.2.53', '[2001:db8::53]:53'], 'relay.example.com']);
  assert.deepEqual(rest, parseConfig('delivery: {upstream: {type: mx}}', 'defaults').delivery.upstream);
});

test('wrong mx settings are refused with one line naming the key', () => {
  const cases: [string, RegExp][] = [
    ['delivery: {upstream: {type: mx, resolver: [dns.example]}}', /delivery\.upstream\.resolver\.0: must be an IP address with an optional port/],
    ['delivery: {upstream: {type: mx, heloName: "not a name"}}', /delivery\.upstream\.heloName: "not a name" is not a valid domain name/],
    [
      'delivery: {upstream: {type: mx, eightBitMime: true}}',
      /delivery\.upstream\.eightBitMime: must be false: with direct MX delivery the next hop is unknown/,
    ],
    ['delivery: {upstream: {type: mx, maxConnectionsPerDomain: 0}}', /delivery\.upstream\.maxConnectionsPerDomain/],
    ['delivery: {upstream: {type: mx, host: mx.example}}', /unknown key delivery\.upstream\.host/],
    ['delivery: {upstream: {type: mx, allowNetworks: ["10.1"]}}', /delivery\.upstream\.allowNetworks\.0: "10\.1" is not an IP address or CIDR range/],
  ];
  for (const [yaml, what] of cases) expectUserError(() => parseConfig(yaml, 'test.yaml'), what);
});
