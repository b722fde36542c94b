import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseHeader } from '../../src/message/header.ts';
import { UNSIGNABLE_HEADERS, selectHeaders } from '../../src/signing/header-selection.ts';

const fields = (text: string) => parseHeader(Buffer.from(text.replace(/\n/g, '\r\n'), 'latin1'));

test('an oversigned header is listed once more than it occurs', () => {
  const h = fields('From: a@example.com\nTo: b@example.org\nSubject: hi\n');
  const s = selectHeaders(h, ['From', 'To', 'Subject', 'Cc', 'Reply-To'], ['From', 'Subject', 'Reply-To']);
  // Cc is absent and not oversigned: not listed. Reply-To is absent but oversigned: listed once.
  assert.deepEqual(s.names, ['From', 'From', 'To', 'Subject', 'Subject', 'Reply-To']);
  assert.deepEqual(
    s.fields.map((f) => f.raw),
    ['From: a@example.com', 'To: b@example.org', 'Subject: hi'],
  );
});

test('repeated headers are signed bottom-up', () => {
  const h = fields('To: first@example.org\nFrom: a@example.com\nTo: second@example.org\nTo: third@example.org\n');
  const s = selectHeaders(h, ['From', 'To'], []);
  assert.deepEqual(s.names, ['From', 'To', 'To', 'To']);
  assert.deepEqual(
    s.fields.map((f) => f.raw),
    ['From: a@example.com', 'To: third@example.org', 'To: second@example.org', 'To: first@example.org'],
  );
});

test('names match case-insensitively and h= uses the configured spelling', () => {
  const h = fields('FROM: a@example.com\nsubject: hi\nMIME-VERSION: 1.0\n');
  const s = selectHeaders(h, ['from', 'Subject', 'SUBJECT', 'Mime-Version'], ['subject']);
  assert.deepEqual(s.names, ['from', 'Subject', 'Subject', 'Mime-Version']);
  assert.equal(s.fields.length, 3);
});

test('trace and transit headers are never signed, even when configured', () => {
  const h = fields('Received: from x\nReturn-Path: <a@example.com>\nDKIM-Signature: v=1\nFrom: a@example.com\n');
  const s = selectHeaders(h, ['Received', 'Return-Path', 'DKIM-Signature', 'From'], ['Received', 'From']);
  assert.deepEqual(s.names, ['From', 'From']);
  for (const key of ['received', 'return-path', 'dkim-signature']) assert.ok(UNSIGNABLE_HEADERS.has(key));
});

test('From is always signed', () => {
  const h = fields('Subject: hi\nFrom: a@example.com\n');
  assert.deepEqual(selectHeaders(h, ['Subject'], []).names, ['From', 'Subject']);
  assert.deepEqual(selectHeaders(h, ['Subject'], ['From']).names, ['Subject', 'From', 'From']);
});

test('an invalid configured name is rejected', () => {
  assert.throws(() => selectHeaders(fields('From: a\n'), ['Bad Name'], []), /invalid header name/);
  assert.throws(() => selectHeaders(fields('From: a\n'), ['X:Y'], []), /invalid header name/);
});
