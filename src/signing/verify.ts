// Verification of every DKIM signature in a message, with mailauth in its
// strict mode: an implementation independent of our signer, so a
// canonicalization bug on one side cannot hide itself, and as strict as the
// strictest receiver (RFC 8301, RFC 6376 §3.5 and §6.1). Keys come from the
// store (self-check) or from DNS.
import type { DKIMVerifyResult, DNSResolver } from 'mailauth';
import { parseTagList, type TagList } from '../dns/tag-list.ts';
import { fieldsNamed, fieldValue, parseHeader, splitMessage, type HeaderField } from '../message/header.ts';
import { toCrlf } from '../message/lines.ts';
import { isAligned, type AlignmentMode } from './alignment.ts';
import { judgeSignature, type Verdict } from './verdict.ts';

export interface SignatureResult {
  domain: string;
  selector: string;
  /** a= as written. */
  algorithm: string;
  result: Verdict;
  /** A stable code for scripts (see verdict.ts). */
  reason: string;
  /** A sentence saying why, empty for a pass. */
  comment: string;
  /** d= aligns with the From: domain (DMARC). */
  aligned: boolean;
  /** The h= list, lower case, in its order. */
  signedHeaders: string[];
  /** For each From: field, top to bottom: whether h= covers it (RFC 6376 §5.4.2 selects from the bottom up). */
  fromCovered: boolean[];
}

export interface Verification {
  /** Domains of the From: addresses. */
  fromDomains: string[];
  /** Number of From: header fields (RFC 5322 allows one). */
  fromFields: number;
  /** Each From: field's value, top to bottom. */
  from: string[];
  signatures: SignatureResult[];
}

/** What mailauth's verifier returns, the part read here. */
export type VerifierResults = Pick<DKIMVerifyResult, 'results' | 'headerFrom' | 'fromFields'>;

export const MIN_BITS = 1024;

export async function verifyMessage(message: Buffer, resolver: DNSResolver | undefined, alignment: AlignmentMode = 'relaxed'): Promise<Verification> {
  // Loaded here, by the one command that needs it: mailauth's entry point brings its SPF, DMARC, ARC
  // and BIMI code (about 10 MiB), which the relay's self-check, through mailauth-internals.ts, never uses.
  const { dkimVerify } = await import('mailauth');
  const outcome = await dkimVerify(message, { resolver, minBitLength: MIN_BITS, strict: true });
  return describeVerification(toCrlf(message), outcome, alignment);
}

/** mailauth's results for a message that starts with `header` (CRLF lines), judged and described. */
export function describeVerification(header: Buffer, outcome: VerifierResults, alignment: AlignmentMode): Verification {
  const fromDomains = outcome.headerFrom.map((address) => address.slice(address.lastIndexOf('@') + 1).toLowerCase());
  const fields = headerFields(splitMessage(header).header);
  const signatureFields = fieldsNamed(fields, 'dkim-signature');
  const from = fieldsNamed(fields, 'from').map(fieldValue);
  const results = outcome.results.filter((r) => r.status?.result !== 'none');
  const signatures = results.map((r, i): SignatureResult => {
    // In the strict mode every DKIM-Signature field has a result, in the order of the fields.
    const field = results.length === signatureFields.length ? signatureFields[i] : undefined;
    const tags: TagList = field ? parseTagList(fieldValue(field)) : { ok: false, problem: 'not read' };
    const signedHeaders = tags.ok
      ? (tags.tags.get('h') ?? '')
          .split(':')
          .map((h) => h.trim().toLowerCase())
          .filter(Boolean)
      : [];
    const signedFroms = signedHeaders.filter((h) => h === 'from').length;
    const domain = (r.signingDomain ?? '').toLowerCase();
    return {
      domain,
      selector: r.selector ?? '',
      algorithm: r.algo ?? (tags.ok ? (tags.tags.get('a') ?? '') : ''),
      ...judgeSignature(r, tags),
      aligned: fromDomains.length > 0 && fromDomains.every((f) => isAligned(domain, f, alignment)),
      signedHeaders,
      fromCovered: from.map((_, index) => index >= from.length - signedFroms),
    };
  });
  return { fromDomains, fromFields: outcome.fromFields, from, signatures };
}

/** Why the message as a whole cannot pass whatever its signatures say, or undefined. */
export function messageProblem(v: Verification): string | undefined {
  if (v.fromFields === 0) return 'the message has no From: field, so DMARC has no author domain to align with (RFC 7489 §6.6.1)';
  if (v.fromFields > 1) {
    const added = v.from.filter((_, i) => !v.signatures.some((s) => s.result === 'pass' && s.fromCovered[i]));
    const tail = added.length > 0 ? `; not covered by a passing signature's h=: ${added.map((f) => `"${f}"`).join(', ')}` : '';
    return `the message has ${v.fromFields} From: fields, so it has no defined author (RFC 5322 §3.6, RFC 7489 §6.6.1)${tail}`;
  }
  return undefined;
}

function headerFields(header: Buffer): HeaderField[] {
  try {
    return parseHeader(header);
  } catch {
    // A header we cannot split: the verdicts still stand, only the tag details are missing.
    return [];
  }
}
