// DMARC identifier alignment of a DKIM d= with the From: domain (RFC 7489 §3.1.1).
// Relaxed compares organisational domains from the Public Suffix List (tldts,
// ICANN and private sections: foo.github.io and bar.github.io do not align).
import { getDomain } from 'tldts';

export type AlignmentMode = 'relaxed' | 'strict';

export function organizationalDomain(domain: string): string {
  const name = domain.toLowerCase().replace(/\.$/, '');
  return getDomain(name, { allowPrivateDomains: true }) ?? name;
}

export function isAligned(signingDomain: string, fromDomain: string, mode: AlignmentMode): boolean {
  const d = signingDomain.toLowerCase().replace(/\.$/, '');
  const from = fromDomain.toLowerCase().replace(/\.$/, '');
  if (mode === 'strict') return d === from;
  return organizationalDomain(d) === organizationalDomain(from);
}
