// Replies of direct delivery: a receiving host's own, and the relay's
// (failure-reply.ts words the failures of a session).
import { parseReply, type SmtpReply } from '../smtp/reply.ts';

/** A reply of ours, e.g. status(451, '4.4.1', 'No answer from mx.example.net'). */
export function status(code: number, enhanced: string, text: string): SmtpReply {
  return { code, enhanced, text };
}

/**
 * A receiving host's own reply, from where it came; with the generic
 * enhanced code of its class when it gave none that agrees (RFC 3463 §3.1:
 * X.0.0), so that every reply of direct delivery carries one.
 */
export function hostReply(response: string | undefined, hop: Hop, command: string | undefined): SmtpReply | null {
  const reply = parseReply(response, { remote: { host: hop.host, address: hop.address }, command });
  return reply && { ...reply, enhanced: reply.enhanced ?? `${String(reply.code)[0]}.0.0` };
}

/** Where a session went, for the reasons we give. */
export interface Hop {
  domain: string;
  host: string;
  address: string;
  port: number;
}
