// The author of a message: the From: header, whose domain picks the signing
// key and against which DMARC judges alignment. It is read strictly (RFC 5322
// §3.4), so the From: that is signed is the From: a reader is shown.
import { isUtf8 } from 'node:buffer';
import { domainToASCII } from 'node:url';
import { isValidDomain } from '../common/names.ts';
import { shownAddressDomains } from '../message/display-address.ts';
import { decodeEncodedWords } from '../message/encoded-word.ts';
import { fieldValue, fieldsNamed, type HeaderField } from '../message/header.ts';
import { parseMailboxList, type Mailbox } from '../message/mailbox-list.ts';

export type Author =
  /** senderDomains: the domain of each Sender: mailbox, which readers show as "on behalf of"; absent without Sender:. */
  { ok: true; domain: string; address: string; senderDomains?: string[] } | { ok: false; problem: string };

export interface AuthorOptions {
  /** An address of another domain in a display name or comment: refused (default) or allowed. */
  displayNameAddress?: 'refuse' | 'allow';
}

type Read = { ok: true; mailboxes: Mailbox[] } | { ok: false; problem: string };

export function findAuthor(fields: HeaderField[], options: AuthorOptions = {}): Author {
  const from = fieldsNamed(fields, 'From');
  if (from.length === 0) return { ok: false, problem: 'the message has no From: header' };
  if (from.length > 1) return { ok: false, problem: `the message has ${from.length} From: headers (RFC 5322 allows one)` };
  const read = readMailboxes(from[0]!, options);
  if (!read.ok) return read;
  if (read.mailboxes.length === 0) return { ok: false, problem: 'the From: header holds no address' };
  const domains = new Set(read.mailboxes.map((m) => asciiDomain(m.domain)));
  if (domains.size > 1) return { ok: false, problem: 'the From: header names addresses in several domains; DMARC cannot align it' };
  const domain = [...domains][0]!;
  // Checked before any lookup: a hostile "domain" of 100 000 dots must cost nothing.
  if (!isValidDomain(domain)) return { ok: false, problem: 'the From: address has no valid domain name' };
  // Readers show Sender: too ("on behalf of"); it is held to the same grammar, and holds one mailbox (RFC 5322 §3.6.2).
  const senderDomains: string[] = [];
  const senders = fieldsNamed(fields, 'Sender');
  if (senders.length > 1) return { ok: false, problem: `the message has ${senders.length} Sender: headers (RFC 5322 allows one)` };
  for (const sender of senders) {
    const mailbox = readMailboxes(sender, options);
    if (!mailbox.ok) return mailbox;
    if (mailbox.mailboxes.length !== 1) return { ok: false, problem: `the Sender: header holds ${mailbox.mailboxes.length} addresses (RFC 5322 allows one)` };
    senderDomains.push(asciiDomain(mailbox.mailboxes[0]!.domain));
  }
  return { ok: true, domain, address: read.mailboxes[0]!.address, ...(senderDomains.length > 0 ? { senderDomains } : {}) };
}

function readMailboxes(field: HeaderField, options: AuthorOptions): Read {
  const name = `${field.name}:`;
  const octets = Buffer.from(fieldValue(field), 'latin1');
  // RFC 6532 allows UTF-8 in a header and nothing else: raw Shift_JIS or Latin-1 shows as
  // whatever charset a reader guesses, so the text that is signed is not the text that is read.
  if (!isUtf8(octets)) {
    return { ok: false, problem: `the ${name} header holds 8-bit octets that are not UTF-8 (RFC 6532); send the display name as an RFC 2047 encoded-word` };
  }
  const value = octets.toString('utf8');
  const parsed = parseMailboxList(value);
  if (!parsed.ok) return { ok: false, problem: `the ${name} header is ambiguous: ${parsed.problem}` };
  const own = new Set(parsed.mailboxes.map((m) => asciiDomain(m.domain)));
  for (const shown of [...parsed.mailboxes.map((m) => m.displayName), ...parsed.comments]) {
    const decoded = decodeEncodedWords(shown);
    if (!decoded.ok) return { ok: false, problem: `the ${name} header is ambiguous: ${decoded.problem}` };
    if (/[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/.test(decoded.text)) {
      return { ok: false, problem: `the ${name} header is ambiguous: an encoded-word decodes to a control character` };
    }
    const other = options.displayNameAddress === 'allow' ? undefined : shownAddressDomains(decoded.text).find((d) => !own.has(d));
    if (other !== undefined) {
      return {
        ok: false,
        problem: `the ${name} header shows an address at ${other} in its display name or a comment, but the mailbox is at ${[...own].join(', ')} (headers.displayNameAddress)`,
      };
    }
  }
  return { ok: true, mailboxes: parsed.mailboxes };
}

function asciiDomain(domain: string): string {
  return domainToASCII(domain.toLowerCase());
}
