// The author of a message: the From: header, whose domain picks the signing
// key and against which DMARC judges alignment.
import { domainToASCII } from 'node:url';
import addressparser from 'nodemailer/lib/addressparser';
import { isValidDomain } from '../keys/names.ts';
import { fieldValue, fieldsNamed, type HeaderField } from '../message/header.ts';

export type Author =
  | { ok: true; domain: string; address: string }
  | { ok: false; problem: string };

export function findAuthor(fields: HeaderField[]): Author {
  const from = fieldsNamed(fields, 'From');
  if (from.length === 0) return { ok: false, problem: 'the message has no From: header' };
  if (from.length > 1) return { ok: false, problem: `the message has ${from.length} From: headers (RFC 5322 allows one)` };
  const value = Buffer.from(fieldValue(from[0]!), 'latin1').toString('utf8');
  const addresses = addressparser(value, { flatten: true }).map((a) => a.address ?? '').filter((a) => a.includes('@'));
  if (addresses.length === 0) return { ok: false, problem: 'the From: header holds no address' };
  const domains = new Set(addresses.map((a) => domainToASCII(a.slice(a.lastIndexOf('@') + 1).toLowerCase())));
  if (domains.size > 1) return { ok: false, problem: 'the From: header names addresses in several domains; DMARC cannot align it' };
  const domain = [...domains][0]!;
  // Checked before any lookup: a hostile "domain" of 100 000 dots must cost nothing.
  if (!isValidDomain(domain)) return { ok: false, problem: 'the From: address has no valid domain name' };
  return { ok: true, domain, address: addresses[0]! };
}
