// The Received: trace field a relay adds to every message it passes on
// (RFC 5321 §4.4), e.g.
//
//   Received: from printer.example.com ([192.0.2.7])
//   	by relay.example.com (dkim-relay) with ESMTPSA id 3f9c0a1b2c4d
//   	for <alice@example.net>;
//   	Mon, 23 Nov 2026 09:28:00 +0000
//
// Everything the client chose (its EHLO name, the recipient) is checked
// against the grammar first: nothing it sends can add a line or 8-bit text.
import { isIPv4, isIPv6 } from 'node:net';
import { rfc5322Date } from './date.ts';

export interface Trace {
  /** The name the client gave in EHLO or HELO, if any. */
  ehlo: string | false | undefined;
  /** The client's IP address. */
  address: string;
  /** Our own name (listen.hostname). */
  by: string;
  /** ESMTP (EHLO) or SMTP (HELO); RFC 3848 adds S after STARTTLS or on the TLS port, A after AUTH. */
  esmtp: boolean;
  tls: boolean;
  auth: boolean;
  /** The message's id in our log. */
  id: string;
  recipients: string[];
  date: Date;
}

/** RFC 5321 §4.1.2 Domain (a name, not necessarily fully qualified); "_" is tolerated, as Windows hosts use it. */
const LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

function isDomain(name: string): boolean {
  return name.length > 0 && name.length <= 255 && name.split('.').every((l) => LABEL.test(l));
}

/** RFC 5321 §4.1.3 address literal: [192.0.2.1] or [IPv6:2001:db8::1]. */
export function addressLiteral(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)?.[1];
  if (mapped && isIPv4(mapped)) return `[${mapped}]`;
  if (isIPv4(ip)) return `[${ip}]`;
  if (isIPv6(ip)) return `[IPv6:${ip}]`;
  return '[unknown]';
}

/** The EHLO name as the client gave it when it is a domain or an address literal, else "unknown". */
function clientName(ehlo: string | false | undefined): string {
  if (!ehlo) return 'unknown';
  if (isDomain(ehlo)) return ehlo;
  const literal = /^\[(?:IPv6:)?([0-9A-Fa-f.:]+)\]$/.exec(ehlo)?.[1];
  return literal && (isIPv4(literal) || isIPv6(literal)) ? ehlo : 'unknown';
}

/** RFC 3848 with-protocol. */
export function withProtocol(t: Pick<Trace, 'esmtp' | 'tls' | 'auth'>): string {
  return `${t.esmtp ? 'ESMTP' : 'SMTP'}${t.tls ? 'S' : ''}${t.auth ? 'A' : ''}`;
}

/** The whole field with its final CRLF, folded as Postfix folds it. */
export function receivedField(t: Trace): string {
  const lines = [
    `Received: from ${clientName(t.ehlo)} (${addressLiteral(t.address)})`,
    `\tby ${isDomain(t.by) ? t.by : 'unknown'} (dkim-relay) with ${withProtocol(t)} id ${t.id}`,
  ];
  // RFC 5321 §4.4: "for" names the recipient only when there is exactly one,
  // so the copy of one recipient does not reveal the others. An address that
  // is not plain printable ASCII is left out rather than quoted.
  const only = t.recipients.length === 1 ? t.recipients[0]! : '';
  if (/^[!-~]+$/.test(only) && !/[<>;]/.test(only)) lines.push(`\tfor <${only}>`);
  lines[lines.length - 1] += ';';
  lines.push(`\t${rfc5322Date(t.date)}`);
  return lines.join('\r\n') + '\r\n';
}
