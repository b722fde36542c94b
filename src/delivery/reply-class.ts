// Whether a server's reply ends a recipient's delivery (delivered or
// bounced) or leaves it for a later attempt: a pure table, consulted in
// order, first match wins, the way ZoneMTA's bounce rules are.
//
// The reply code decides (RFC 5321 §4.2.1: 2yz done, 4yz try again, 5yz
// give up), except where servers are known to say 5yz about a condition
// that passes: a full mailbox (RFC 3463 §3.3: X.2.2 is a persistent
// transient failure) and "too many recipients" given as 552 by older
// servers (RFC 5321 §4.5.3.1.10: to be treated as 452).
import { type SmtpReply } from '../smtp/reply.ts';

export type ReplyClass = 'success' | 'temporary' | 'permanent';

interface Rule {
  code: RegExp;
  enhanced?: RegExp;
  text?: RegExp;
  class: ReplyClass;
  why: string;
}

const FULL = /over ?quota|quota (exceeded|full)|exceed\w{0,3} (the )?(storage|quota)|mailbox (is )?full|insufficient (system )?storage|mailbox size limit/i;

export const REPLY_RULES: readonly Rule[] = [
  { code: /^2\d\d$/, class: 'success', why: 'accepted' },
  { code: /^5\d\d$/, enhanced: /^5\.2\.2$/, class: 'temporary', why: 'mailbox full (X.2.2), which passes' },
  { code: /^552$/, text: FULL, class: 'temporary', why: 'mailbox over quota, which passes' },
  { code: /^552$/, text: /too many recipients/i, class: 'temporary', why: '552 too many recipients, to be read as 452' },
  { code: /^5\d\d$/, text: /greylist/i, class: 'temporary', why: 'greylisting, which passes' },
  { code: /^4\d\d$/, class: 'temporary', why: 'temporary failure' },
  { code: /^5\d\d$/, class: 'permanent', why: 'permanent failure' },
  // 1yz, 3yz or nonsense after DATA: the server misbehaved, try again.
  { code: /./, class: 'temporary', why: 'unexpected reply' },
];

export function classifyReply(reply: SmtpReply): { class: ReplyClass; why: string } {
  const code = String(reply.code);
  for (const rule of REPLY_RULES) {
    if (!rule.code.test(code)) continue;
    if (rule.enhanced && !rule.enhanced.test(reply.enhanced ?? '')) continue;
    if (rule.text && !rule.text.test(reply.text)) continue;
    return { class: rule.class, why: rule.why };
  }
  return { class: 'temporary', why: 'unexpected reply' };
}
