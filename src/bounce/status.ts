// The Status field of one recipient (RFC 3464 §2.3.4): an RFC 3463 code.
import { isEnhancedStatus, type SmtpReply } from '../smtp/reply.ts';

export type DsnAction = 'failed' | 'delayed';

export interface StatusSource {
  /** A status the caller already knows; used as it is when well-formed. */
  status?: string | undefined;
  reply?: SmtpReply | undefined;
  /** The message was given up after temporary failures (queue.maxAge reached). */
  expired?: boolean | undefined;
}

/**
 * The enhanced code of the reply when its class agrees with the reply code
 * (a server writing "550 4.1.1" contradicts itself; the reply code wins),
 * else the class alone: X.0.0 "other undefined status" (RFC 3463 §3.1).
 * A message given up in the queue without a better code is 4.4.7,
 * "delivery time expired" (RFC 3463 §3.5): its failures were temporary.
 */
export function recipientStatus(source: StatusSource, action: DsnAction): string {
  if (isEnhancedStatus(source.status)) return source.status;
  const reply = source.reply;
  if (reply) {
    const replyClass = Math.floor(reply.code / 100);
    if (isEnhancedStatus(reply.enhanced) && reply.enhanced.startsWith(`${replyClass}.`)) return reply.enhanced;
    if (replyClass === 5) return '5.0.0';
    if (replyClass === 4) return source.expired ? '4.4.7' : '4.0.0';
  }
  if (source.expired) return '4.4.7';
  return action === 'failed' ? '5.0.0' : '4.0.0';
}
