import assert from 'node:assert/strict';
import { test } from 'node:test';
import { disagreement } from '../../src/dns/disagreement.ts';
import { parseNameserver, formatNameserver } from '../../src/dns/nameserver.ts';
import { UserError } from '../../src/common/errors.ts';

test('servers that serve the same records agree, whatever the order', () => {
  assert.equal(
    disagreement([
      { server: 'a', status: 'match', values: ['x', 'y'] },
      { server: 'b', status: 'match', values: ['y', 'x'] },
    ]),
    null,
  );
});

test('a different p=, no record, or no answer is a disagreement naming each server', () => {
  const line = disagreement([
    { server: '192.0.2.1:53', status: 'match', values: ['v=DKIM1; k=rsa; p=AAAAOLDKEY111'] },
    { server: '192.0.2.2:53', status: 'mismatch', values: ['v=DKIM1; k=rsa; p=BBBBNEWKEY222'] },
    { server: '192.0.2.3:53', status: 'missing', values: [] },
    { server: '192.0.2.4:53', status: 'temperror', values: null },
  ])!;
  assert.match(
    line,
    /^servers disagree: 192\.0\.2\.1:53 match \(p=\.\.\.AAAOLDKEY111\), 192\.0\.2\.2:53 mismatch \(p=\.\.\.BBBNEWKEY222\), 192\.0\.2\.3:53 missing \(no record\), 192\.0\.2\.4:53 temperror/,
  );
  assert.doesNotMatch(line, /\n/);
});

test('name server addresses: IPv4, IPv6, ports; anything else is a usage error', () => {
  assert.deepEqual(parseNameserver('192.0.2.53'), { host: '192.0.2.53', port: 53 });
  assert.deepEqual(parseNameserver('192.0.2.53:5353'), { host: '192.0.2.53', port: 5353 });
  assert.deepEqual(parseNameserver('2001:db8::53'), { host: '2001:db8::53', port: 53 });
  assert.deepEqual(parseNameserver('[2001:db8::53]:5353'), { host: '2001:db8::53', port: 5353 });
  assert.equal(formatNameserver({ host: '2001:db8::53', port: 53 }), '[2001:db8::53]:53');
  for (const bad of ['ns1.example.com', '192.0.2.53:0', '192.0.2.53:70000', '300.1.1.1', '']) assert.throws(() => parseNameserver(bad), UserError);
});
