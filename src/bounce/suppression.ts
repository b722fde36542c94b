// When no DSN is sent, and how the ones that are sent are grouped.
//
// Never to the null sender: a notice's own sender is null so that a notice
// about a notice is impossible (RFC 3461 §6.2, RFC 5321 §4.5.5); the same
// holds for an original that is a report itself (multipart/report,
// RFC 6522 §1) or that was submitted automatically (Auto-Submitted other
// than "no", RFC 3834 §2 and §5), which would otherwise risk a loop. The
// client may limit notices per recipient with NOTIFY (RFC 3461 §4.1).
//
// Precedence: bulk, junk and list do NOT suppress a notice. That rule is for
// responders to people (RFC 3834 §2 names them as a heuristic), while a
// mailing list or bulk sender sets its envelope sender precisely to collect
// bounces and unsubscribe dead addresses; silencing them would keep the
// failures hidden from the only one who acts on them.
//
// Never to a sender the submitting client could not use: a client held to
// some domains (clients[].domains) gets notices only at addresses of those
// domains, so no one can aim a signed notice carrying their message at a
// third party (backscatter) by naming it as the envelope sender.
import { fieldValue, fieldsNamed, parseHeader, splitMessage, type HeaderField } from '../message/header.ts';
import { inDomains, normalizeDomain } from '../common/names.ts';
import { contentInfo } from '../message/mime/content-type.ts';
import type { DsnAction } from './status.ts';

export type SuppressionReason =
  /** The envelope sender of the original is <>. */
  | 'null-sender'
  /** The client that submitted the original was held to domains (clients[].domains) the envelope sender is not in. */
  | 'sender-not-allowed'
  /** The original is a report itself (Content-Type: multipart/report). */
  | 'report'
  /** The original carries Auto-Submitted: with a value other than "no". */
  | 'auto-submitted'
  /** The client asked NOTIFY=NEVER for the recipient. */
  | 'notify-never'
  /** The client's NOTIFY for the recipient leaves out this action (FAILURE or DELAY). */
  | 'notify-excludes';

/**
 * NOTIFY when the client gave none. RFC 3461 §4.1 lets the MTA choose
 * FAILURE or FAILURE,DELAY; FAILURE,DELAY is the choice here, so a sender
 * hears of a message stuck in the queue before it is given up.
 */
export const DEFAULT_NOTIFY: readonly string[] = ['FAILURE', 'DELAY'];

const NOTIFY_KEYWORD: Record<DsnAction, string> = { failed: 'FAILURE', delayed: 'DELAY' };

export const isNullSender = (sender: string): boolean => sender === '' || sender === '<>';

function headerFields(original: Buffer): HeaderField[] {
  try {
    return parseHeader(splitMessage(original).header);
  } catch {
    // A header we cannot read says nothing against a notice; the relay refuses those at intake anyway.
    return [];
  }
}

/** RFC 3834 §5: the keyword before any parameter or comment, e.g. "auto-generated". */
function autoSubmittedKeyword(field: HeaderField): string {
  return (withoutComments(fieldValue(field)).split(';')[0] ?? '').trim().toLowerCase();
}

/**
 * The value with each "(...)" a space, in one pass; an unclosed "(" runs to
 * the end. (/\([^)]*\)/g would walk to the end again from every "(" of a
 * long unclosed run.)
 */
function withoutComments(value: string): string {
  let out = '';
  let from = 0;
  for (let open = value.indexOf('('); open >= 0; open = value.indexOf('(', from)) {
    const close = value.indexOf(')', open + 1);
    if (close < 0) break;
    out += value.slice(from, open) + ' ';
    from = close + 1;
  }
  return out + value.slice(from);
}

/** Whether the envelope sender is in the domains the client was held to; null: it was held to none. */
export function senderAllowed(sender: string, senderDomains: readonly string[] | null | undefined): boolean {
  if (senderDomains === null || senderDomains === undefined) return true;
  const address = sender.replace(/^<|>$/g, '');
  try {
    return inDomains(normalizeDomain(address.slice(address.lastIndexOf('@') + 1)), senderDomains);
  } catch {
    return false; // no domain we could read: not one of the allowed ones
  }
}

/**
 * Why no notice at all may be sent about this message, or undefined when
 * notices may be sent. `senderDomains`: the domains the submitting client
 * was held to, null or undefined when none.
 */
export function messageSuppression(sender: string, original: Buffer, senderDomains?: readonly string[] | null): SuppressionReason | undefined {
  if (isNullSender(sender)) return 'null-sender';
  if (!senderAllowed(sender, senderDomains)) return 'sender-not-allowed';
  const fields = headerFields(original);
  if (contentInfo(fields, 'text/plain').type === 'multipart/report') return 'report';
  if (fieldsNamed(fields, 'Auto-Submitted').some((f) => !['', 'no'].includes(autoSubmittedKeyword(f)))) return 'auto-submitted';
  return undefined;
}

/** Why this recipient's NOTIFY rules out a notice of this action, or undefined when it allows one. */
export function recipientSuppression(notify: readonly string[] | undefined, action: DsnAction): SuppressionReason | undefined {
  const values = (notify && notify.length > 0 ? notify : DEFAULT_NOTIFY).map((v) => v.toUpperCase());
  if (values.includes('NEVER')) return 'notify-never';
  return values.includes(NOTIFY_KEYWORD[action]) ? undefined : 'notify-excludes';
}

export interface RecipientOutcome<R> {
  recipient: R;
  action: DsnAction;
  /** The recipient's NOTIFY values as received (smtp-server: upper case), or none. */
  notify?: readonly string[] | undefined;
}

export interface NoticePlan<R> {
  /** At most one notice per action, failed first, each with every recipient it reports. */
  notices: { action: DsnAction; recipients: R[] }[];
  suppressed: { recipient: R; action: DsnAction; reason: SuppressionReason }[];
}

/**
 * The notices for one delivery pass of one message: the recipients that
 * failed (or were delayed) in the same pass share one notice, so a message
 * to fifty dead addresses brings its sender one notice, not fifty.
 */
export function planNotices<R>(
  sender: string,
  original: Buffer,
  outcomes: readonly RecipientOutcome<R>[],
  senderDomains?: readonly string[] | null,
): NoticePlan<R> {
  const plan: NoticePlan<R> = { notices: [], suppressed: [] };
  if (outcomes.length === 0) return plan;
  const whole = messageSuppression(sender, original, senderDomains);
  for (const action of ['failed', 'delayed'] as const) {
    const recipients: R[] = [];
    for (const o of outcomes) {
      if (o.action !== action) continue;
      const reason = whole ?? recipientSuppression(o.notify, action);
      if (reason) plan.suppressed.push({ recipient: o.recipient, action, reason });
      else recipients.push(o.recipient);
    }
    if (recipients.length > 0) plan.notices.push({ action, recipients });
  }
  return plan;
}
