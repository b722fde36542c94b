// What one delivery attempt means for each recipient it covered: delivered,
// bounced (a permanent refusal, or temporary ones past queue.maxAge) or
// deferred to a later attempt; and who is owed a notice. Pure: the clock and
// the random source are given.
import { classifyReply } from '../delivery/reply-class.ts';
import type { SmtpReply } from '../smtp/reply.ts';
import { afterTemporaryFailure, delayWarningDue, type RetryPolicy } from './backoff.ts';
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
  return reply.enhanced === '4.6.7' ? { code: 553, enhanced: '5.6.7', text: reply.text } : reply;
}

/**
 * Recipients that can share one SMTP transaction: a transaction carries one
 * NOTIFY and one ORCPT for all its recipients, so recipients whose differ go
 * in transactions of their own (RFC 3461 §4.1, §4.2).
 */
export function transactionGroups<R extends { notify: string[] | null; orcpt: string | null }>(recipients: readonly R[]): R[][] {
  const groups = new Map<string, R[]>();
  for (const r of recipients) {
    const key = `${r.notify?.join(',') ?? ''}\n${r.orcpt ?? ''}`;
    const group = groups.get(key);
    if (group) group.push(r);
    else groups.set(key, [r]);
  }
  return [...groups.values()];
}
