// Date: and Message-ID: for messages that lack them (RFC 5322 §3.6 requires the
// first and asks for the second). Receivers score mail without them as spam, and
// a downstream MTA that adds them after signing adds unsigned copies.
import { randomUUID } from 'node:crypto';
import { domainToASCII } from 'node:url';

export { rfc5322Date } from '../date.ts';

/** A fresh msg-id at the given domain (A-labels, so the header stays 7-bit). */
export function newMessageId(domain: string): string {
  const ascii = domainToASCII(domain.trim().replace(/\.$/, '').toLowerCase());
  return `<${randomUUID()}@${ascii || 'dkim-relay.invalid'}>`;
}
