// An SMTP reply as a delivery attempt saw it (RFC 5321 §4.2), with its
// enhanced status code (RFC 3463) when the server gave one.

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

/** The reply on one line, as the server wrote it: "550 5.1.1 User unknown". */
export function replyLine(reply: SmtpReply): string {
  const text = reply.text.split(/\r?\n/).map((line) => line.trim()).filter(Boolean).join(' ');
  return [String(reply.code), isEnhancedStatus(reply.enhanced) ? reply.enhanced : '', text].filter(Boolean).join(' ');
}
