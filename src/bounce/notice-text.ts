// The first part of a DSN, for people (RFC 3464 §1.1, RFC 6522 §3): which
// recipients it is about, what their servers answered, and what the sender
// can do about it, in plain words.
import { rfc5322Date } from '../message/date.ts';
import { type SmtpReply } from '../smtp/reply.ts';
import type { ReturnedContent } from './returned-content.ts';
import { recipientStatus, type DsnAction } from './status.ts';

export interface NoticeRecipient {
  address: string;
  reply?: SmtpReply | undefined;
  remoteMta?: string | undefined;
  status?: string | undefined;
  expired?: boolean | undefined;
  /** What went wrong, in words, when no server answered (e.g. "no MX or A record for example.net"). */
  problem?: string | undefined;
}

export interface Notice {
  action: DsnAction;
  reportingMta: string;
  arrival: Date;
  recipients: readonly NoticeRecipient[];
  willRetryUntil?: Date | undefined;
  returned: ReturnedContent;
  /** The size limit on returned messages, in octets. */
  limit: number;
}

const WIDTH = 72;
const INDENT = '    ';

/** Control characters out: a server's reply is shown, never interpreted. */
const clean = (text: string): string => text.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '').replace(/\t/g, ' ');

/** Words wrapped to 72 columns after the indent (a longer word stays whole). */
function wrap(text: string, indent = ''): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && indent.length + line.length + 1 + word.length > WIDTH) {
      lines.push(indent + line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(indent + line);
  return lines;
}

/** What the sender can do, by the RFC 3463 subject and detail of the status. */
export function advice(status: string, action: DsnAction): string {
  if (action === 'delayed') return 'You need not send the message again.';
  const [, subject, detail] = status.split('.');
  const code = `${subject}.${detail}`;
  if (status === '4.4.7' || subject === '4') {
    return 'The receiving system could not be reached for as long as the relay keeps a message. Check the domain of the address; if it is right, send the message again later or reach the recipient another way.';
  }
  if (code === '1.2') return 'The domain of the address does not receive mail: check the part after the "@" for typing mistakes.';
  if (subject === '1') return 'Check the address for typing mistakes, or ask the recipient for the right one.';
  if (code === '2.2') return "The recipient's mailbox is full: send the message again later, or reach the recipient another way.";
  if (code === '3.4' || code === '2.3')
    return 'The message is too large for the receiving system: send it smaller, for example with a link instead of an attachment.';
  if (subject === '2') return "The recipient's mailbox does not take mail at present: reach the recipient another way.";
  if (subject === '7') {
    return "The receiving system refused the message by its policy (spam filtering, sender authentication or access rules). Ask the recipient's mail administrator about it, quoting the reply above.";
  }
  return "Ask the recipient's mail administrator about the reply above, or reach the recipient another way.";
}

function recipientLines(r: NoticeRecipient, action: DsnAction): string[] {
  const lines = [`<${clean(r.address)}>`];
  if (r.reply) {
    lines.push(...wrap(r.remoteMta ? `The receiving server ${clean(r.remoteMta)} answered:` : 'The receiving server answered:', INDENT));
    const replyLines = clean(r.reply.text)
      .split(/\r?\n/)
      .map((l) => l.trim());
    const code = `${r.reply.code}${r.reply.enhanced ? ` ${clean(r.reply.enhanced)}` : ''}`;
    replyLines.forEach((l, i) => lines.push(`${INDENT}${INDENT}${code}${i < replyLines.length - 1 ? '-' : ' '}${l}`));
  } else if (r.problem) {
    lines.push(...wrap(clean(r.problem), INDENT));
  }
  if (r.expired && action === 'failed') lines.push(...wrap('The relay kept trying for as long as it keeps a message, and has now given up.', INDENT));
  const what = advice(recipientStatus(r, action), action);
  lines.push(...wrap(action === 'delayed' ? what : `What you can do: ${what.charAt(0).toLowerCase()}${what.slice(1)}`, INDENT));
  return lines;
}

function returnedLine(notice: Notice): string {
  const r = notice.returned;
  if (r.kind === 'message') return 'Your message is attached below.';
  switch (r.reason) {
    case 'delay':
      return 'The header of your message is attached below, for reference.';
    case 'requested':
      return 'The header of your message is attached below (you asked for headers only).';
    case 'size':
      return `Only the header of your message is attached below: the message is larger than ${notice.limit} octets.`;
    case '8bit':
      return 'Only the header of your message is attached below: the message holds 8-bit data that this notice cannot carry.';
  }
}

/** The notice as lines of text, joined by CRLF, ending in CRLF. */
export function noticeText(notice: Notice): string {
  const arrival = rfc5322Date(notice.arrival);
  const lines = [`This is the mail system at ${clean(notice.reportingMta)}.`, ''];
  if (notice.action === 'failed') {
    lines.push(
      ...wrap(
        `Your message of ${arrival} could not be delivered to the recipients below. The relay has given up on them; the other recipients, if any, are not affected.`,
      ),
    );
  } else {
    const until = notice.willRetryUntil ? rfc5322Date(notice.willRetryUntil) : 'it expires';
    lines.push(
      ...wrap(
        `Your message of ${arrival} has not yet been delivered to the recipients below. The relay keeps trying until ${until}. You will be told again only if it cannot be delivered by then.`,
      ),
    );
  }
  for (const r of notice.recipients) lines.push('', ...recipientLines(r, notice.action));
  lines.push('', ...wrap(`The same report follows in machine-readable form. ${returnedLine(notice)}`));
  return lines.join('\r\n') + '\r\n';
}
