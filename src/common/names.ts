// Domain and selector names: validated once, stored lower-case in ASCII (IDNA).
import { domainToASCII } from 'node:url';
import { UserError } from './errors.ts';

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/** An ASCII (IDNA) domain of at least two labels, within DNS limits. */
export function isValidDomain(ascii: string): boolean {
  const labels = ascii.split('.');
  return ascii.length > 0 && ascii.length <= 253 && labels.length >= 2 && labels.every((l) => LABEL.test(l));
}

export function normalizeDomain(input: string): string {
  const ascii = domainToASCII(input.trim().replace(/\.$/, '').toLowerCase());
  if (!isValidDomain(ascii)) {
    throw new UserError(`"${input}" is not a valid domain name`, 'give a domain such as example.com');
  }
  return ascii;
}

export function normalizeSelector(input: string): string {
  const selector = input.trim().toLowerCase();
  if (!selector || !selector.split('.').every((l) => LABEL.test(l))) {
    throw new UserError(`"${input}" is not a valid selector`, 'use letters, digits and hyphens, e.g. s202611a (RFC 6376 §3.1)');
  }
  return selector;
}

/** A client's name starts its selectors: one DNS label, short enough to leave room for the date and letters. */
const CLIENT_NAME = /^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/;

export function isValidClientName(name: string): boolean {
  return CLIENT_NAME.test(name);
}

export function normalizeClientName(input: string): string {
  const name = input.trim().toLowerCase();
  if (!isValidClientName(name)) {
    throw new UserError(
      `"${input}" is not a valid client name`,
      'use up to 32 letters, digits and inner hyphens, e.g. scanner (it starts the selectors of its keys)',
    );
  }
  return name;
}

/** The DNS name a selector's record lives at. */
export function recordName(selector: string, domain: string): string {
  return `${selector}._domainkey.${domain}`;
}

/**
 * s + year + month + a letter, the first one not taken: s202611a, s202611b, …
 * A client's chain puts its name first: scanner-202611a.
 */
export function nextSelector(taken: Set<string>, now = new Date(), client?: string): string {
  const stem = `${client === undefined ? 's' : `${client}-`}${now.getUTCFullYear()}${String(now.getUTCMonth() + 1).padStart(2, '0')}`;
  for (let n = 0; ; n++) {
    const candidate = stem + suffix(n);
    if (!taken.has(candidate)) return candidate;
  }
}

/** 0 → a, 25 → z, 26 → aa, … */
function suffix(n: number): string {
  let s = '';
  for (let i = n + 1; i > 0; i = Math.floor((i - 1) / 26)) s = String.fromCharCode(97 + ((i - 1) % 26)) + s;
  return s;
}

/** The domain is one of `domains` or a subdomain of one (all lower case). */
export function inDomains(domain: string, domains: readonly string[]): boolean {
  return domains.some((d) => domain === d || domain.endsWith(`.${d}`));
}
