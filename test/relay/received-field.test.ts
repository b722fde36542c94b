// The Received: field as a pure function of the session, with a fixed clock.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { receivedField, type Trace } from '../../src/message/received.ts';

const BASE: Trace = {
  ehlo: 'printer.example.com',
  address: '192.0.2.7',
  by: 'relay.example.com',
  esmtp: true,
  tls: false,
  auth: false,
  id: '3f9c0a1b2c4d',
  recipients: ['alice@example.net'],
  date: new Date(Date.UTC(2026, 10, 23, 8, 28, 0)),
};

test('the whole field, folded with CRLF TAB, ending in CRLF', () => {
  assert.equal(
    receivedField(BASE),
    'Received: from printer.example.com ([192.0.2.7])\r\n' +
      '\tby relay.example.com (dkim-relay) with ESMTP id 3f9c0a1b2c4d\r\n' +
      '\tfor <alice@example.net>;\r\n' +
      '\tMon, 23 Nov 2026 08:28:00 +0000\r\n',
  );
});

test('RFC 3848 protocols: SMTP after HELO, S for TLS, A for AUTH', () => {
  const proto = (over: Partial<Trace>) => /with (\S+)/.exec(receivedField({ ...BASE, ...over }))![1];
  assert.equal(proto({ esmtp: false }), 'SMTP');
  assert.equal(proto({ tls: true }), 'ESMTPS');
  assert.equal(proto({ auth: true }), 'ESMTPA');
  assert.equal(proto({ tls: true, auth: true }), 'ESMTPSA');
});

test('address literals: IPv6 tagged, IPv4-mapped IPv6 written as IPv4', () => {
  assert.match(receivedField({ ...BASE, address: '2001:db8::7' }), /^Received: from printer\.example\.com \(\[IPv6:2001:db8::7\]\)/);
  assert.match(receivedField({ ...BASE, address: '::ffff:192.0.2.7' }), /\(\[192\.0\.2\.7\]\)/);
  assert.match(receivedField({ ...BASE, ehlo: '[IPv6:2001:db8::7]' }), /^Received: from \[IPv6:2001:db8::7\] /);
});

test('what the client chose cannot break the field: bad EHLO names become "unknown", odd recipients are left out', () => {
  const names: Trace['ehlo'][] = ['evil\r\nX-Injected: yes', 'caf\u00e9.example', 'a b', 'x'.repeat(64), '[not.an.ip]', '', false, undefined];
  for (const ehlo of names) {
    const field = receivedField({ ...BASE, ehlo });
    assert.match(field, /^Received: from unknown \(\[192\.0\.2\.7\]\)\r\n/, JSON.stringify(ehlo));
    assert.equal(field.split('\r\n').length, 5, 'no line added');
  }
  assert.match(receivedField({ ...BASE, ehlo: 'PRINTER_01' }), /^Received: from PRINTER_01 /, 'Windows host names are kept');
  for (const recipients of [['j\u00f6rg@example.net'], ['"a b"@example.net'], ['a@x', 'b@y'], []]) {
    const field = receivedField({ ...BASE, recipients });
    assert.doesNotMatch(field, /\tfor /, JSON.stringify(recipients));
    assert.match(field, /id 3f9c0a1b2c4d;\r\n\tMon, 23 Nov 2026 08:28:00 \+0000\r\n$/);
  }
});
