// Step 1: Date: and Message-ID: added when missing, after the last field.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normalize } from '../../src/pipeline/normalize/index.ts';
import { crlf, header, ok, options, split } from './support.ts';

const NOW = new Date(Date.UTC(2026, 10, 22, 9, 5, 7));
const BARE = crlf(['Received: from a by b; Sun, 22 Nov 2026 09:00:00 +0000', 'From: a@example.com', 'Subject: hi', '', 'body']);

test('a message that lacks both gets Date: and Message-ID: appended after its last field', () => {
  const { message, changes } = ok(normalize(BARE, options({ addDate: true, addMessageId: true, now: NOW, messageIdDomain: 'example.com' })));
  assert.deepEqual(changes, ['added Date:', 'added Message-ID:']);
  const { header: block, body } = split(message);
  const lines = block.split('\r\n').filter(Boolean);
  assert.deepEqual(lines.slice(0, 3), ['Received: from a by b; Sun, 22 Nov 2026 09:00:00 +0000', 'From: a@example.com', 'Subject: hi']);
  assert.equal(lines[3], 'Date: Sun, 22 Nov 2026 09:05:07 +0000');
  assert.match(lines[4]!, /^Message-ID: <[0-9a-f-]{36}@example\.com>$/);
  assert.equal(body, 'body\r\n');
  // the original header bytes are a prefix of the new header
  assert.ok(message.subarray(0, split(BARE).header.length).equals(Buffer.from(split(BARE).header, 'latin1')));
});

test('two messages get different Message-IDs; an IDN domain is written as A-labels', () => {
  const opts = options({ addMessageId: true, messageIdDomain: 'bücher.example' });
  const a = header(split(ok(normalize(BARE, opts)).message).header, 'Message-ID');
  const b = header(split(ok(normalize(BARE, opts)).message).header, 'Message-ID');
  assert.notEqual(a, b);
  assert.match(a!, /@xn--bcher-kva\.example>$/);
});

test('present fields are kept, and the options turn the step off', () => {
  const full = crlf(['From: a@example.com', 'date: Sun, 22 Nov 2026 09:00:00 +0000', 'Message-Id: <x@y>', '', 'body']);
  const same = ok(normalize(full, options({ addDate: true, addMessageId: true })));
  assert.equal(same.message, full);
  assert.deepEqual(same.changes, []);
  const off = ok(normalize(BARE, options({ addDate: false, addMessageId: false })));
  assert.equal(off.message, BARE);
  const dateOnly = ok(normalize(BARE, options({ addDate: true, now: NOW })));
  assert.deepEqual(dateOnly.changes, ['added Date:']);
  assert.equal(header(split(dateOnly.message).header, 'Message-ID'), undefined);
});

test('a header-only message (no body) gets the fields too', () => {
  const msg = crlf(['From: a@example.com', 'Subject: x']);
  const { message } = ok(normalize(msg, options({ addDate: true, now: NOW })));
  assert.equal(message.toString(), 'From: a@example.com\r\nSubject: x\r\nDate: Sun, 22 Nov 2026 09:05:07 +0000\r\n');
});
