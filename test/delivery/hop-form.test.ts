// The form a message takes for one next hop: pure decisions, and which
// header fields on top are the relay's own.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formForHop, type HopExtensions, type MessageFacts } from '../../src/delivery/hop-form.ts';
import { ownFields } from '../../src/delivery/hop-preparation.ts';
import { parseHeader } from '../../src/message/header.ts';

const HOST = 'Upstream relay.example.net';
const ALL: HopExtensions = { eightBitMime: true, smtpUtf8: true };
const SEVEN_BIT: HopExtensions = { eightBitMime: false, smtpUtf8: false };
const NO_UTF8: HopExtensions = { eightBitMime: true, smtpUtf8: false };
const facts = (more: Partial<MessageFacts> = {}): MessageFacts => ({ internationalAddress: null, headerEightBit: false, eightBit: false, ...more });

test('a message that fits the hop goes as it is; BODY=8BITMIME only for 8-bit content to a hop that takes it', () => {
  assert.deepEqual(formForHop(facts(), SEVEN_BIT, HOST), { action: 'send', eightBit: false });
  assert.deepEqual(formForHop(facts({ eightBit: true }), ALL, HOST), { action: 'send', eightBit: true });
  assert.deepEqual(formForHop(facts({ eightBit: true, headerEightBit: true }), ALL, HOST), { action: 'send', eightBit: true });
  assert.deepEqual(formForHop(facts({ eightBit: true }), NO_UTF8, HOST), { action: 'send', eightBit: true });
});

test('8-bit content to a hop without 8BITMIME, or 8-bit header text to one without SMTPUTF8: re-encoded for that hop', () => {
  assert.deepEqual(formForHop(facts({ eightBit: true }), SEVEN_BIT, HOST), { action: 'reencode', hop: SEVEN_BIT });
  assert.deepEqual(formForHop(facts({ eightBit: true, headerEightBit: true }), NO_UTF8, HOST), { action: 'reencode', hop: NO_UTF8 });
  // RFC 6531 §3.1: SMTPUTF8 without 8BITMIME counts for nothing.
  assert.deepEqual(formForHop(facts({ eightBit: true, headerEightBit: true }), { eightBitMime: false, smtpUtf8: true }, HOST), {
    action: 'reencode',
    hop: SEVEN_BIT,
  });
});

test('an 8-bit envelope address to a hop without SMTPUTF8 is deferred with 4.6.7, whatever else the message holds', () => {
  for (const hop of [SEVEN_BIT, NO_UTF8, { eightBitMime: false, smtpUtf8: true }]) {
    const form = formForHop(facts({ internationalAddress: 'jörg@example.net' }), hop, HOST);
    assert.equal(form.action, 'defer');
    assert.deepEqual(form.action === 'defer' && [form.reply.code, form.reply.enhanced, form.reply.text], [
      451,
      '4.6.7',
      'Upstream relay.example.net does not announce SMTPUTF8, which <jörg@example.net> needs (RFC 6531)',
    ]);
  }
  assert.deepEqual(formForHop(facts({ internationalAddress: 'jörg@example.net', eightBit: true }), ALL, HOST), { action: 'send', eightBit: true });
});

const fields = (...lines: string[]) => parseHeader(Buffer.from(lines.map((l) => `${l}\r\n`).join(''), 'latin1'));
const OURS = 'DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s1;\r\n\tbh=x; b=y';
const OURS_ED = 'DKIM-Signature: v=1; a=ed25519-sha256; d=Example.COM; s=e1; bh=x; b=y';
const FOREIGN = 'DKIM-Signature: v=1; a=rsa-sha256; d=foreign.example; s=s1; bh=x; b=y';
const RECEIVED = 'Received: from client (client [192.0.2.1])\r\n\tby relay.test with ESMTP id 1; Sun, 6 Dec 2026 01:00:00 +0000';

test("the relay's own fields on top: its Received: (kept), its check field and its signatures (taken off); foreign signatures stay", () => {
  const signedBy = [
    { domain: 'example.com', selector: 's1' },
    { domain: 'example.com', selector: 'e1' },
  ];
  const header = fields(RECEIVED, 'X-DKIM-Relay-Check: relay.test; pass; d=example.com s=s1 pass', OURS, OURS_ED, FOREIGN, 'From: a@example.com');
  const own = ownFields(header, signedBy);
  assert.equal(own.signatures, 2);
  assert.equal(
    own.length,
    [RECEIVED, 'X-DKIM-Relay-Check: relay.test; pass; d=example.com s=s1 pass', OURS, OURS_ED].reduce((n, f) => n + f.length + 2, 0),
  );
  assert.equal(own.trace.toString('latin1'), `${RECEIVED}\r\n`);
});

test('a signature of ours below a foreign field is not ours to take off; without one, nothing is taken', () => {
  const signedBy = [{ domain: 'example.com', selector: 's1' }];
  assert.deepEqual(ownFields(fields(FOREIGN, OURS, 'From: a@example.com'), signedBy).signatures, 0);
  const unsigned = ownFields(fields(RECEIVED, 'From: a@example.com'), []);
  assert.deepEqual([unsigned.signatures, unsigned.length, unsigned.trace.length], [0, 0, 0]);
  // Same d= and s= but no longer listed (another selector): not ours.
  assert.equal(ownFields(fields(OURS, 'From: a@example.com'), [{ domain: 'example.com', selector: 's2' }]).signatures, 0);
});
