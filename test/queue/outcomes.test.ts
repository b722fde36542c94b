import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RetryPolicy } from '../../src/queue/backoff.ts';
import { decideOutcomes, postponedForNotices } from '../../src/queue/outcomes.ts';
import type { QueuedRecipient } from '../../src/queue/queue-index.ts';
import { smtpReply } from '../../src/smtp/reply.ts';

const policy: RetryPolicy = { firstRetryMs: 60_000, maxRetryMs: 3_600_000, maxAgeMs: 86_400_000, delayWarningMs: 3_600_000, jitter: 0 };
const recipient = (seq: number, extra: Partial<QueuedRecipient> = {}): QueuedRecipient => ({
  seq,
  address: `r${seq}@example.net`,
  orcpt: null,
  notify: null,
  state: 'delivering',
  attempts: 0,
  nextAttemptAt: 0,
  lastReply: null,
  delayWarnedAt: null,
  updatedAt: 0,
  ...extra,
});

test('each recipient gets its own result: delivered, bounced, deferred with back-off', () => {
  const results = decideOutcomes(
    {
      receivedAt: 0,
      now: 1000,
      recipients: [recipient(0), recipient(1), recipient(2)],
      replies: new Map([
        [0, smtpReply(250, '2.0.0 Ok')],
        [1, smtpReply(550, '5.1.1 User unknown')],
        [2, smtpReply(451, '4.3.0 later')],
      ]),
    },
    policy,
    () => 0,
  );
  assert.deepEqual(
    results.map((r) => r.outcome.result),
    ['delivered', 'bounced', 'deferred'],
  );
  assert.equal((results[2]!.outcome as { nextAttemptAt: number }).nextAttemptAt, 61_000);
  assert.equal(results[1]!.expired, false);
});

test('a temporary failure past maxAge bounces as expired; a missing reply is temporary', () => {
  const [late] = decideOutcomes(
    { receivedAt: 0, now: 86_400_000, recipients: [recipient(0, { attempts: 9 })], replies: new Map([[0, smtpReply(451, 'later')]]) },
    policy,
    () => 0,
  );
  assert.equal(late!.outcome.result, 'bounced');
  assert.equal(late!.expired, true);
  const [none] = decideOutcomes({ receivedAt: 0, now: 1, recipients: [recipient(0)], replies: new Map() }, policy, () => 0);
  assert.equal(none!.outcome.result, 'deferred');
});

test('a delay warning is due once, after delayWarning, unless NOTIFY leaves DELAY out', () => {
  const replies = new Map([[0, smtpReply(451, 'later')]]);
  const at = (r: QueuedRecipient, now: number) => decideOutcomes({ receivedAt: 0, now, recipients: [r], replies }, policy, () => 0)[0]!.warnDelay;
  assert.equal(at(recipient(0), 1000), false);
  assert.equal(at(recipient(0), 3_600_000), true);
  assert.equal(at(recipient(0, { delayWarnedAt: 5 }), 3_600_000), false);
  assert.equal(at(recipient(0, { notify: ['FAILURE'] }), 3_600_000), false);
});

test('a notice that cannot be queued: the bounce waits by the back-off of its attempt, a deferral keeps its own time', () => {
  const results = decideOutcomes(
    {
      receivedAt: 0,
      now: 1000,
      recipients: [recipient(0, { attempts: 2 }), recipient(1)],
      replies: new Map([
        [0, smtpReply(550, '5.1.1 User unknown')],
        [1, smtpReply(451, '4.3.0 later')],
      ]),
    },
    policy,
    () => 0,
  );
  const [bounced, deferred] = postponedForNotices(results, 'spool disk is full (ENOSPC)', 1000, policy, () => 0);
  // The third attempt failed: firstRetry × 2².
  assert.deepEqual(bounced, {
    seq: 0,
    result: 'deferred',
    nextAttemptAt: 1000 + 4 * 60_000,
    reply: {
      code: 451,
      enhanced: '4.3.1',
      text: 'A delivery status notification could not be queued (spool disk is full (ENOSPC)); last reply: 550 5.1.1 User unknown',
    },
  });
  assert.equal(deferred, results[1]!.outcome);
  // Past maxAge too: a bounce without its notice would lose the mail.
  const [late] = postponedForNotices(
    decideOutcomes(
      { receivedAt: 0, now: 2 * 86_400_000, recipients: [recipient(0, { attempts: 30 })], replies: new Map([[0, smtpReply(451, 'later')]]) },
      policy,
      () => 0,
    ),
    'full',
    2 * 86_400_000,
    policy,
    () => 0,
  );
  assert.deepEqual([late!.result, late!.nextAttemptAt], ['deferred', 2 * 86_400_000 + 3_600_000]);
});

test('mail that needs SMTPUTF8 is deferred (4.6.7) before maxAge and returned with 5.6.7 at it (RFC 6531 §3.5)', () => {
  const replies = new Map([[0, smtpReply(451, '4.6.7 Upstream h does not announce SMTPUTF8, which <j\u00f6rg@example.net> needs (RFC 6531)')]]);
  const [early] = decideOutcomes({ receivedAt: 0, now: 1000, recipients: [recipient(0)], replies }, policy, () => 0);
  assert.deepEqual([early!.outcome.result, early!.outcome.reply.code, early!.outcome.reply.enhanced], ['deferred', 451, '4.6.7']);
  const [late] = decideOutcomes({ receivedAt: 0, now: 86_400_000, recipients: [recipient(0, { attempts: 9 })], replies }, policy, () => 0);
  assert.deepEqual([late!.outcome.result, late!.expired, late!.outcome.reply.code, late!.outcome.reply.enhanced], ['bounced', true, 553, '5.6.7']);
  assert.match(late!.outcome.reply.text, /does not announce SMTPUTF8/);
  const [other] = decideOutcomes(
    { receivedAt: 0, now: 86_400_000, recipients: [recipient(0)], replies: new Map([[0, smtpReply(451, '4.4.1 down')]]) },
    policy,
    () => 0,
  );
  assert.deepEqual([other!.outcome.reply.code, other!.outcome.reply.enhanced], [451, '4.4.1'], 'other temporary replies stay as they were');
});
