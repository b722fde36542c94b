// Date: and Message-ID: for messages that lack them (RFC 5322 §3.6 requires the
// first and asks for the second). Receivers score mail without them as spam, and
// a downstream MTA that adds them after signing adds unsigned copies.
import { randomUUID } from 'node:crypto';
import { domainToASCII } from 'node:url';

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n: number): string => String(n).padStart(2, '0');

/** RFC 5322 §3.3 date-time in UTC, e.g. "Tue, 01 Dec 2026 09:05:00 +0000". */
export function rfc5322Date(d: Date): string {
  const time = `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}`;
  return `${DAYS[d.getUTCDay()]}, ${two(d.getUTCDate())} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ${time} +0000`;
}

/** A fresh msg-id at the given domain (A-labels, so the header stays 7-bit). */
export function newMessageId(domain: string): string {
  const ascii = domainToASCII(domain.trim().replace(/\.$/, '').toLowerCase());
  return `<${randomUUID()}@${ascii || 'dkim-relay.invalid'}>`;
}
