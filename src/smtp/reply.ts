// An SMTP reply (RFC 5321 §4.2) with its enhanced status code (RFC 3463)
// when it has one: what an upstream answered, what the pipeline refuses
// with, what the listener tells the client. One shape for the whole path.

export interface SmtpReply {
  /** Three-digit reply code, e.g. 550. */
  code: number;
  /** RFC 3463 enhanced status code, e.g. "5.1.1", when the reply carried one. */
  enhanced?: string | undefined;
  /** The reply text without code and enhanced code; the lines of a multi-line reply joined by "\n". */
  text: string;
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

/** The text after the code, as sent on the wire: "5.1.1 User unknown". */
export function replyText(reply: SmtpReply): string {
  return isEnhancedStatus(reply.enhanced) ? (reply.text ? `${reply.enhanced} ${reply.text}` : reply.enhanced) : reply.text;
}

/** The reply on one line, as the server wrote it: "550 5.1.1 User unknown". */
export function replyLine(reply: SmtpReply): string {
  const text = reply.text.split(/\r?\n/).map((line) => line.trim()).filter(Boolean).join(' ');
  return [String(reply.code), isEnhancedStatus(reply.enhanced) ? reply.enhanced : '', text].filter(Boolean).join(' ');
}

/** A reply that smtp-server sends as "<code> <text>" when a handler fails with it. */
export function replyError(reply: SmtpReply): Error {
  // RFC 5321 §4.5.3.1.5: reply text is printable ASCII; whatever we quote from a message is made so.
  const ascii = replyText(reply).replace(/[^\x20-\x7e]/g, '?');
  return Object.assign(new Error(ascii.length > 450 ? `${ascii.slice(0, 447)}...` : ascii), { responseCode: reply.code });
}
