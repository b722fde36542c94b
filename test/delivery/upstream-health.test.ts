// When the smart host counts as failing: decided from each attempt's reply
// with an injected clock, and what /readyz says about it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UpstreamHealth, failingFor } from '../../src/delivery/upstream-health.ts';
import { forAll, type UpstreamReply } from '../../src/delivery/upstream.ts';
import { readyAnswer } from '../../src/observability/health.ts';
import { smtpReply } from '../../src/smtp/reply.ts';

const envelope = { from: 'a@example.com', to: ['b@example.net', 'c@example.net'] };
const unreachable = forAll(envelope, smtpReply(451, '4.4.1 Upstream unavailable: connection refused'));
const accepted = forAll(envelope, smtpReply(250, '2.0.0 Ok'));
const refusedForGood = forAll(envelope, smtpReply(554, '5.7.1 Relay access denied'));
const oneMailboxFull: UpstreamReply = {
  ...smtpReply(250, '2.0.0 Ok'),
  recipients: [
    { address: 'b@example.net', reply: smtpReply(452, '4.2.2 Mailbox full') },
    { address: 'c@example.net', reply: smtpReply(250, '2.0.0 Ok') },
  ],
};

test('failing from the first attempt that fails as a whole with 4xx, told once longer than the threshold, cleared by an accepted transaction', () => {
  let now = 1_000_000;
  const health = new UpstreamHealth('smtp mail.example.net:587', 60_000, () => now);
  assert.equal(health.state().failingSince, null);
  health.answered(unreachable);
  now += 30_000;
  health.answered(unreachable);
  assert.equal(health.state().failingSince, 1_000_000, 'the first failure starts the clock');
  assert.equal(failingFor(health.state()), null, 'not yet past queue.retryAfter');
  now += 31_000;
  assert.equal(failingFor(health.state()), 61);
  const ready = readyAnswer('ready', health.state());
  assert.equal(ready.status, 200, 'the relay still accepts');
  assert.equal(
    ready.body,
    'ready\nupstream smtp mail.example.net:587 failing for 61s (longer than queue.retryAfter; mail is queued meanwhile): 451 4.4.1 Upstream unavailable: connection refused\n',
  );

  health.answered(oneMailboxFull);
  assert.equal(health.state().failingSince, null, 'a transaction the host took ends it');
  assert.equal(readyAnswer('ready', health.state()).body, 'ready\n');
});

test('a refusal for good, or of one recipient, says the host answers: not failing', () => {
  const health = new UpstreamHealth('smtp mail.example.net:587', 0, () => 5);
  health.answered(refusedForGood);
  health.answered({
    ...smtpReply(452, '4.2.2 Mailbox full'),
    recipients: [
      { address: 'b@example.net', reply: smtpReply(452, '4.2.2 Mailbox full') },
      { address: 'c@example.net', reply: smtpReply(250, '2.0.0 Ok') },
    ],
  });
  assert.equal(health.state().failingSince, null);
});
