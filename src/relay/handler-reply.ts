// How the listener's smtp-server handlers answer a command.
import { replyError, smtpReply } from '../smtp/reply.ts';

/** An SMTP reply that smtp-server sends as "<code> <text>"; `text` may begin with the enhanced code. */
export function reply(code: number, text: string): Error {
  return replyError(smtpReply(code, text));
}

/**
 * smtp-server loses a pipelined second transaction when a handler answers
 * synchronously (SMTPStream.continue() clears the continuation after calling
 * it); answering on the next turn of the event loop avoids that.
 */
export function later(callback: (err?: Error | null) => void, err?: Error): void {
  setImmediate(() => callback(err));
}
