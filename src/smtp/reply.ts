// An SMTP reply (RFC 5321 §4.2) with its enhanced status code (RFC 3463)
// when it has one: what an upstream answered, what the pipeline refuses
// with, what the listener tells the client, what the queue records and a
// delivery status notification quotes. One shape for the whole path.

/** The server that gave a reply: its name (the MX or smart host as configured) and the address connected to. */
export interface RemoteHost {
  host: string;
  address: string;
}

export interface SmtpReply {
  /** Three-digit reply code, e.g. 550. */
  code: number;
  /** RFC 3463 enhanced status code, e.g. "5.1.1", when the reply carried one. */
  enhanced?: string | undefined;
  /** The reply text without code and enhanced code; the lines of a multi-line reply joined by "\n". */
  text: string;
  /** Where a receiving server's own reply came from (RFC 3464 §2.3.5 Remote-MTA); absent for the relay's own replies. */
  remote?: RemoteHost | undefined;
  /** The command the server answered: "MAIL FROM", "RCPT TO", "DATA". */
  command?: string | undefined;
}

/** RFC 3463 §2: class.subject.detail, class 2, 4 or 5, each number at most three digits. */
const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3}$/;

export function isEnhancedStatus(value: string | undefined): value is string {
  return value !== undefined && ENHANCED.test(value);
}

/** A reply from its code and a text that may begin with the enhanced code: (550, "5.1.1 User unknown"). */
export function smtpReply(code: number, text: string): SmtpReply {
  const match = /^([245]\.\d{1,3}\.\d{1,3})(?:\s+|$)(.*)$/s.exec(text);
  return match ? { code, enhanced: match[1], text: match[2]! } : { code, text };
}

/**
 * A server's reply as it came over the wire, one line or several:
 * "550-5.1.1 No\r\n550 5.1.1 such user" → {550, "5.1.1", "No such user"};
 * null when it is no SMTP reply. `from`: the host that gave it and the command it answered.
 */
export function parseReply(response: string | undefined, from: Pick<SmtpReply, 'remote' | 'command'> = {}): SmtpReply | null {
  const lines = (response ?? '').trim().split(/\r?\n/);
  const code = /^([245])\d\d/.exec(lines[0]!)?.[0];
  if (!code) return null;
  const given = /^\d{3}[ -]?([245]\.\d{1,3}\.\d{1,3})(?=\s|$)/.exec(lines[0]!)?.[1];
  // RFC 3463 §2: the class of the enhanced code must agree with the reply's; when it does not, it is only text.
  const enhanced = given !== undefined && given[0] === code[0] ? given : undefined;
  // RFC 2034 §4: every line of a multi-line reply repeats the enhanced code.
  const text = lines
    .map((line) => {
      const rest = line.replace(/^\d{3}[ -]?/, '').trim();
      return enhanced && (rest === enhanced || rest.startsWith(`${enhanced} `)) ? rest.slice(enhanced.length).trim() : rest;
    })
    .filter(Boolean)
    .join(' ')
    .replace(/\s+/g, ' ');
  const reply: SmtpReply = enhanced ? { code: Number(code), enhanced, text } : { code: Number(code), text };
  if (from.remote) reply.remote = from.remote;
  if (from.command) reply.command = from.command;
  return reply;
}

/** The text after the code, as sent on the wire: "5.1.1 User unknown". */
export function replyText(reply: SmtpReply): string {
  return isEnhancedStatus(reply.enhanced) ? (reply.text ? `${reply.enhanced} ${reply.text}` : reply.enhanced) : reply.text;
}

/** The reply on one line, as the server wrote it: "550 5.1.1 User unknown". */
export function replyLine(reply: SmtpReply): string {
  const text = reply.text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter(Boolean)
    .join(' ');
  return [String(reply.code), isEnhancedStatus(reply.enhanced) ? reply.enhanced : '', text].filter(Boolean).join(' ');
}

/** A reply that smtp-server sends as "<code> <text>" when a handler fails with it. */
export function replyError(reply: SmtpReply): Error {
  // RFC 5321 §4.5.3.1.5: reply text is printable ASCII; whatever we quote from a message is made so.
  const ascii = replyText(reply).replace(/[^\x20-\x7e]/g, '?');
  return Object.assign(new Error(ascii.length > 450 ? `${ascii.slice(0, 447)}...` : ascii), { responseCode: reply.code });
}

/** One recipient's own reply. */
export interface RecipientReply {
  address: string;
  reply: SmtpReply;
}

/**
 * One reply for the whole message from each recipient's. Plain SMTP has one
 * reply after DATA: when some recipients were refused, answering 250 would
 * drop them silently, so the worst refusal is passed on, a temporary one
 * first (a retry may duplicate the copies already accepted: never lost).
 */
export function combinedReply(recipients: readonly RecipientReply[]): SmtpReply {
  const refused = recipients.filter((r) => r.reply.code >= 400);
  if (refused.length === 0) {
    const replies = recipients.map((r) => r.reply);
    const enhanced = new Set(replies.map((r) => r.enhanced));
    const texts = [...new Set(replies.map((r) => r.text))];
    const reply: SmtpReply = { code: replies[0]?.code ?? 250, text: texts.join('; ') };
    // One enhanced code when all agree on it, else the generic success (RFC 3463 §3.1).
    const common = enhanced.size === 1 ? [...enhanced][0] : '2.0.0';
    if (common !== undefined) reply.enhanced = common;
    return reply;
  }
  const worst = refused.find((r) => r.reply.code < 500) ?? refused[0]!;
  const accepted = recipients.filter((r) => r.reply.code < 400).map((r) => r.address);
  const already = accepted.length ? ` (already accepted for ${accepted.join(', ')})` : '';
  const forWhom = recipients.length > 1 ? ` (for <${worst.address}>)` : '';
  return { ...worst.reply, text: `${worst.reply.text}${forWhom}${already}` };
}
