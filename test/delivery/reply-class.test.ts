import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classifyReply } from '../../src/delivery/reply-class.ts';
import { replyError, replyLine, replyText, smtpReply } from '../../src/smtp/reply.ts';

const cls = (code: number, text: string) => classifyReply(smtpReply(code, text)).class;

test('the reply code decides in the ordinary case', () => {
  assert.equal(cls(250, '2.0.0 Ok'), 'success');
  assert.equal(cls(451, '4.3.0 try later'), 'temporary');
  assert.equal(cls(421, 'closing'), 'temporary');
  assert.equal(cls(550, '5.1.1 <x@example.net>: User unknown'), 'permanent');
  assert.equal(cls(554, '5.7.1 Message rejected as spam'), 'permanent');
  // A server contradicting itself: the reply code wins.
  assert.equal(cls(550, '4.1.1 unknown'), 'permanent');
});

test('a full mailbox is temporary, whatever code it comes with', () => {
  assert.equal(cls(552, '5.2.2 Mailbox full'), 'temporary');
  assert.equal(cls(550, '5.2.2 The email account that you tried to reach is over quota'), 'temporary');
  assert.equal(cls(552, 'Requested mail action aborted: exceeded storage allocation'), 'temporary');
  assert.equal(cls(552, '5.1.1 Recipient overquota'), 'temporary');
  assert.equal(cls(452, '4.2.2 Mailbox full'), 'temporary');
  assert.equal(cls(552, '5.3.4 Message size exceeds fixed limit'), 'permanent');
});

test('552 too many recipients is read as 452; greylisting as temporary', () => {
  assert.equal(cls(552, '5.5.3 Too many recipients'), 'temporary');
  assert.equal(cls(550, '5.7.1 Greylisted, please try again in 5 minutes'), 'temporary');
});

test('replies outside 2yz/4yz/5yz are retried', () => {
  assert.equal(cls(354, 'go ahead'), 'temporary');
  assert.equal(cls(0, ''), 'temporary');
});

test('one reply shape: split, written back, sent by smtp-server', () => {
  assert.deepEqual(smtpReply(550, '5.1.1 User unknown'), { code: 550, enhanced: '5.1.1', text: 'User unknown' });
  assert.deepEqual(smtpReply(250, 'Ok: queued as X'), { code: 250, text: 'Ok: queued as X' });
  assert.equal(replyText({ code: 452, enhanced: '4.3.1', text: 'spool full' }), '4.3.1 spool full');
  assert.equal(replyLine({ code: 452, enhanced: '4.3.1', text: 'spool\nfull' }), '452 4.3.1 spool full');
  const err = replyError({ code: 451, enhanced: '4.3.0', text: 'Local error ü' }) as Error & { responseCode: number };
  assert.equal(err.responseCode, 451);
  assert.equal(err.message, '4.3.0 Local error ?');
});
