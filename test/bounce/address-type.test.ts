// Addresses in the delivery-status report: RFC 3464 typed, RFC 6533 utf-8-addr-xtext.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { originalRecipientValue, typedAddress, utf8AddrXtext } from '../../src/bounce/address-type.ts';
import { recipientStatus } from '../../src/bounce/status.ts';

test('utf-8-addr-xtext escapes what QCHAR leaves out, in upper-case hex of two digits or more, no leading zeros beyond', () => {
  assert.equal(utf8AddrXtext('a+b=c\\d@example.com'), 'a\\x{2B}b\\x{3D}c\\x{5C}d@example.com');
  assert.equal(utf8AddrXtext('zoë@例え.jp'), 'zo\\x{EB}@\\x{4F8B}\\x{3048}.jp');
  assert.equal(utf8AddrXtext('😀@example.com'), '\\x{1F600}@example.com');
  assert.equal(utf8AddrXtext('a b\x01c\x00@x'), 'a\\x{20}b\\x{01}c@x', 'space and controls escaped, NUL dropped');
  assert.equal(utf8AddrXtext('é'.repeat(2000)).length, 900 - (900 % 6), 'cut whole, to fit a line');
});

test('ASCII addresses are rfc822, others utf-8', () => {
  assert.equal(typedAddress('bob@example.net'), 'rfc822; bob@example.net');
  assert.equal(typedAddress('björn@example.net'), 'utf-8; bj\\x{F6}rn@example.net');
  assert.equal(typedAddress('"a b"@example.net'), 'utf-8; "a\\x{20}b"@example.net', 'no space inside the value');
});

test('ORCPT keeps its type; a utf-8 one is decoded before it is escaped again', () => {
  assert.equal(originalRecipientValue('rfc822;Bob@Example.net'), 'rfc822; Bob@Example.net');
  assert.equal(originalRecipientValue('RFC822;bob@example.net'), 'rfc822; bob@example.net');
  assert.equal(originalRecipientValue('utf-8;j\\x{F6}rg@example.net'), 'utf-8; j\\x{F6}rg@example.net');
  assert.equal(originalRecipientValue('rfc822;jörg@example.net'), 'utf-8; j\\x{F6}rg@example.net');
  assert.equal(originalRecipientValue(undefined), undefined);
  assert.equal(originalRecipientValue('no-type-here'), undefined);
  assert.equal(originalRecipientValue('rfc822;'), undefined);
});

test('the status follows the reply, or the action and expiry when no server answered', () => {
  assert.equal(recipientStatus({ reply: { code: 550, enhanced: '5.7.26', text: 'DMARC' } }, 'failed'), '5.7.26');
  assert.equal(recipientStatus({ reply: { code: 550, text: 'No' } }, 'failed'), '5.0.0');
  assert.equal(recipientStatus({ reply: { code: 451, text: 'Later' } }, 'delayed'), '4.0.0');
  assert.equal(recipientStatus({ reply: { code: 451, text: 'Later' }, expired: true }, 'failed'), '4.4.7');
  assert.equal(recipientStatus({ reply: { code: 451, enhanced: '4.4.1', text: 'Later' }, expired: true }, 'failed'), '4.4.1');
  assert.equal(recipientStatus({ expired: true }, 'failed'), '4.4.7');
  assert.equal(recipientStatus({}, 'failed'), '5.0.0');
  assert.equal(recipientStatus({}, 'delayed'), '4.0.0');
  assert.equal(recipientStatus({ status: '5.1.10', reply: { code: 550, enhanced: '5.1.1', text: 'x' } }, 'failed'), '5.1.10');
  assert.equal(recipientStatus({ status: 'bogus', reply: { code: 550, enhanced: '5.1.1', text: 'x' } }, 'failed'), '5.1.1');
});
