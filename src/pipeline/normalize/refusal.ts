// A message that cannot be made safe for transit. Thrown deep in the MIME walk
// with the reply normalize() answers; never leaves this folder.
import { smtpReply, type SmtpReply } from '../../smtp/reply.ts';

export class Refusal extends Error {
  readonly reply: SmtpReply;
  /** `text` may begin with the enhanced code: (554, "5.6.0 …"). */
  constructor(code: number, text: string) {
    super(text);
    this.name = 'Refusal';
    this.reply = smtpReply(code, quotable(text));
  }
}

/** Reply text quotes the message: printable ASCII only, and short (RFC 5321 §4.5.3.1.5). */
function quotable(text: string): string {
  const ascii = text.replace(/[^\x20-\x7e]/g, '?');
  return ascii.length > 400 ? `${ascii.slice(0, 397)}...` : ascii;
}

/** "part 1.2", or "" for the message itself: where a change or a problem is. */
export function inPart(path: string): string {
  return path ? ` in part ${path}` : '';
}

/** A field name as quoted in a reply or a change line; hostile ones can be long. */
export function fieldLabel(name: string): string {
  return name.length > 40 ? `${name.slice(0, 40)}...` : name;
}
