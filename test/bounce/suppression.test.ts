// When a notice is sent, when not, and how the recipients of one pass share one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildDsn } from '../../src/bounce/dsn.ts';
import { DEFAULT_NOTIFY, messageSuppression, planNotices, recipientSuppression, type RecipientOutcome } from '../../src/bounce/suppression.ts';
import { only, parseWithPython } from './support.ts';

const message = (...header: string[]): Buffer => Buffer.from([...header, 'From: alice@example.com', 'Subject: Hi', '', 'Hello', ''].join('\r\n'));
const PLAIN = message();

test('no notice to the null sender; a real sender gets one', () => {
  assert.equal(messageSuppression('', PLAIN), 'null-sender');
  assert.equal(messageSuppression('<>', PLAIN), 'null-sender');
  assert.equal(messageSuppression('alice@example.com', PLAIN), undefined);
});

test('no notice about a report (multipart/report); other multiparts get one', () => {
  const report = message('Content-Type: multipart/report; report-type=delivery-status; boundary="b"');
  const folded = message('Content-Type: Multipart/Report;\r\n\treport-type=disposition-notification; boundary="b"');
  assert.equal(messageSuppression('bounces@example.com', report), 'report');
  assert.equal(messageSuppression('bounces@example.com', folded), 'report', 'any report type, any case, folded');
  assert.equal(messageSuppression('alice@example.com', message('Content-Type: multipart/mixed; boundary="b"')), undefined);
});

test('no notice about Auto-Submitted mail other than "no" (RFC 3834)', () => {
  for (const value of ['auto-generated', 'auto-replied', 'Auto-Notified', 'auto-replied; owner-email="x@example.com"', '(cron) auto-generated']) {
    assert.equal(messageSuppression('alice@example.com', message(`Auto-Submitted: ${value}`)), 'auto-submitted', value);
  }
  assert.equal(messageSuppression('alice@example.com', message('Auto-Submitted: no')), undefined);
  assert.equal(messageSuppression('alice@example.com', message('Auto-Submitted: No (a person wrote it)')), undefined);
});

test('Precedence: bulk, junk and list do not suppress a notice: their senders collect bounces', () => {
  for (const value of ['bulk', 'junk', 'list']) assert.equal(messageSuppression('list-bounces@example.com', message(`Precedence: ${value}`)), undefined, value);
});

test('NOTIFY decides per recipient and action; without NOTIFY both failures and delays are told', () => {
  assert.deepEqual(DEFAULT_NOTIFY, ['FAILURE', 'DELAY']);
  assert.equal(recipientSuppression(undefined, 'failed'), undefined);
  assert.equal(recipientSuppression(undefined, 'delayed'), undefined);
  assert.equal(recipientSuppression([], 'delayed'), undefined);
  assert.equal(recipientSuppression(['NEVER'], 'failed'), 'notify-never');
  assert.equal(recipientSuppression(['NEVER'], 'delayed'), 'notify-never');
  assert.equal(recipientSuppression(['SUCCESS'], 'failed'), 'notify-excludes');
  assert.equal(recipientSuppression(['SUCCESS'], 'delayed'), 'notify-excludes');
  assert.equal(recipientSuppression(['FAILURE'], 'failed'), undefined);
  assert.equal(recipientSuppression(['FAILURE'], 'delayed'), 'notify-excludes');
  assert.equal(recipientSuppression(['DELAY'], 'delayed'), undefined);
  assert.equal(recipientSuppression(['DELAY'], 'failed'), 'notify-excludes');
  assert.equal(recipientSuppression(['success', 'failure'], 'failed'), undefined, 'case does not matter');
});

test('one notice per action for the recipients of one pass; NOTIFY leaves some out', () => {
  const outcomes: RecipientOutcome<string>[] = [
    { recipient: 'a@example.net', action: 'failed' },
    { recipient: 'b@example.net', action: 'delayed' },
    { recipient: 'c@example.net', action: 'failed', notify: ['FAILURE'] },
    { recipient: 'd@example.net', action: 'failed', notify: ['NEVER'] },
    { recipient: 'e@example.net', action: 'delayed', notify: ['FAILURE'] },
    { recipient: 'f@example.net', action: 'failed', notify: ['DELAY', 'FAILURE'] },
  ];
  const plan = planNotices('alice@example.com', PLAIN, outcomes);
  assert.deepEqual(plan.notices, [
    { action: 'failed', recipients: ['a@example.net', 'c@example.net', 'f@example.net'] },
    { action: 'delayed', recipients: ['b@example.net'] },
  ]);
  assert.deepEqual(plan.suppressed, [
    { recipient: 'd@example.net', action: 'failed', reason: 'notify-never' },
    { recipient: 'e@example.net', action: 'delayed', reason: 'notify-excludes' },
  ]);
  assert.deepEqual(planNotices('alice@example.com', PLAIN, []), { notices: [], suppressed: [] });
});

test('a message-wide reason suppresses the notice of every recipient', () => {
  const outcomes: RecipientOutcome<string>[] = [
    { recipient: 'a@example.net', action: 'failed', notify: ['FAILURE'] },
    { recipient: 'b@example.net', action: 'delayed' },
  ];
  const plan = planNotices('alice@example.com', message('Auto-Submitted: auto-generated'), outcomes);
  assert.deepEqual(plan.notices, []);
  assert.deepEqual(
    plan.suppressed.map((s) => s.reason),
    ['auto-submitted', 'auto-submitted'],
  );
  assert.deepEqual(
    planNotices('', PLAIN, outcomes).suppressed.map((s) => s.reason),
    ['null-sender', 'null-sender'],
  );
});

test('the planned notice names every recipient that failed in the pass', async () => {
  const failed = ['a@example.net', 'b@example.org', 'c@example.com'];
  const plan = planNotices(
    'alice@example.com',
    PLAIN,
    failed.map((recipient) => ({ recipient, action: 'failed' as const })),
  );
  assert.equal(plan.notices.length, 1);
  const now = new Date('2026-11-23T10:00:00Z');
  const dsn = buildDsn({
    action: plan.notices[0]!.action,
    recipients: plan.notices[0]!.recipients.map((address) => ({ address, reply: { code: 550, enhanced: '5.1.1', text: 'No such user' }, lastAttempt: now })),
    original: PLAIN,
    envelope: { sender: 'alice@example.com', arrival: now },
    reportingMta: 'relay.example.net',
    from: 'mailer-daemon@relay.example.net',
    returnContentLimit: 1024,
    date: now,
  });
  const blocks = (await parseWithPython(dsn.message)).parts[1]!.blocks!;
  assert.deepEqual(
    blocks.slice(1).map((b) => only(b, 'Final-Recipient')),
    failed.map((a) => `rfc822; ${a}`),
  );
});
