// What one delivery attempt means for each recipient it covered: delivered,
// bounced (a permanent refusal, or temporary ones past queue.maxAge) or
// deferred to a later attempt; and who is owed a notice. Pure: the clock and
// the random source are given.
import { classifyReply } from '../delivery/reply-class.ts';
import { replyLine, type SmtpReply } from '../smtp/reply.ts';
import { afterTemporaryFailure, delayWarningDue, retryDelay, type RetryPolicy } from './backoff.ts';
import type { AttemptOutcome, QueuedRecipient } from './queue-index.ts';

export interface RecipientResult {
  recipient: QueuedRecipient;
  outcome: AttemptOutcome;
  /** Bounced because the message reached maxAge after temporary failures. */
  expired: boolean;
  /** Deferred, and a delay warning is due for it now. */
  warnDelay: boolean;
}

export function decideOutcomes(
  input: { receivedAt: number; now: number; recipients: readonly QueuedRecipient[]; replies: ReadonlyMap<number, SmtpReply> },
  policy: RetryPolicy,
  random: () => number,
): RecipientResult[] {
  return input.recipients.map((recipient) => {
    const reply = input.replies.get(recipient.seq) ?? { code: 451, enhanced: '4.3.0', text: 'No reply recorded for this recipient' };
    const seq = recipient.seq;
    const verdict = classifyReply(reply).class;
    if (verdict === 'success') return { recipient, outcome: { seq, result: 'delivered', reply }, expired: false, warnDelay: false };
    if (verdict === 'permanent') return { recipient, outcome: { seq, result: 'bounced', reply }, expired: false, warnDelay: false };
    const next = afterTemporaryFailure({ receivedAt: input.receivedAt, attempts: recipient.attempts + 1, now: input.now }, policy, random);
    if (next.action === 'bounce') return { recipient, outcome: { seq, result: 'bounced', reply: givenUp(reply) }, expired: true, warnDelay: false };
    const warnDelay = delayWarningDue({ receivedAt: input.receivedAt, now: input.now, warnedAt: recipient.delayWarnedAt, notify: recipient.notify }, policy);
    return { recipient, outcome: { seq, result: 'deferred', reply, nextAttemptAt: next.at }, expired: false, warnDelay };
  });
}

/**
 * The reply a recipient is returned with at queue.maxAge. Mail that needs
 * SMTPUTF8 from a next hop that does not announce it is deferred (4.6.7) in
 * case the hop comes to announce it; given up, it is returned with 5.6.7
 * (RFC 6531 §3.5). Other temporary replies stay as they were: the failures were temporary.
 */
function givenUp(reply: SmtpReply): SmtpReply {
  return reply.enhanced === '4.6.7' ? { ...reply, code: 553, enhanced: '5.6.7' } : reply;
}

/**
 * What is recorded when the notices an attempt owes cannot be queued (the
 * spool is full). A bounce is not recorded without its notice, which would
 * lose the mail silently: the recipient waits as after a temporary failure of
 * ours (451 4.3.1, RFC 3463: mail system full), by the same back-off, and is
 * tried again then; past maxAge too, for the same reason. Deferred
 * recipients keep their own next attempt.
 */
export function postponedForNotices(
  results: readonly RecipientResult[],
  why: string,
  now: number,
  policy: RetryPolicy,
  random: () => number,
): (AttemptOutcome & { result: 'deferred' })[] {
  return results.map(({ recipient, outcome }) => {
    if (outcome.result === 'deferred') return outcome;
    const text = `A delivery status notification could not be queued (${why}); last reply: ${replyLine(outcome.reply)}`;
    return {
      seq: outcome.seq,
      result: 'deferred',
      reply: { code: 451, enhanced: '4.3.1', text },
      nextAttemptAt: now + retryDelay(recipient.attempts + 1, policy, random),
    };
  });
}
