// Verification of every DKIM signature in a message, with mailauth: an
// implementation independent of our signer, so a canonicalization bug on one
// side cannot hide itself. Keys come from the store (self-check) or from DNS.
import { dkimVerify, type DNSResolver } from 'mailauth';
import { isAligned, type AlignmentMode } from './alignment.ts';

export interface SignatureResult {
  domain: string;
  selector: string;
  algorithm: string;
  /** pass, fail, neutral, policy, temperror, permerror or none */
  result: string;
  comment: string;
  /** d= aligns with the From: domain (DMARC). */
  aligned: boolean;
}

export interface Verification {
  /** Domains of the From: addresses. */
  fromDomains: string[];
  /** Number of From: header fields (RFC 5322 allows one). */
  fromFields: number;
  signatures: SignatureResult[];
}

export async function verifyMessage(message: Buffer, resolver: DNSResolver | undefined, alignment: AlignmentMode = 'relaxed'): Promise<Verification> {
  const outcome = await dkimVerify(message, { resolver, minBitLength: 1024 });
  const fromDomains = outcome.headerFrom.map((address) => address.slice(address.lastIndexOf('@') + 1).toLowerCase());
  const signatures = outcome.results
    .filter((r) => r.status?.result !== 'none')
    .map((r) => {
      const domain = (r.signingDomain ?? '').toLowerCase();
      return {
        domain,
        selector: r.selector ?? '',
        algorithm: r.algo ?? '',
        // mailauth says "neutral" for a body hash mismatch; to a person that is a failure.
        result: r.status?.result === 'neutral' && /body hash/.test(r.status.comment ?? '') ? 'fail' : (r.status?.result ?? 'none'),
        comment: r.status?.comment ?? '',
        aligned: fromDomains.length > 0 && fromDomains.every((from) => isAligned(domain, from, alignment)),
      };
    });
  return { fromDomains, fromFields: outcome.fromFields, signatures };
}
