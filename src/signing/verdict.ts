// What one DKIM-Signature field is worth, as the strictest receiver judges it:
// mailauth's strict verifier result turned into a verdict, a stable reason
// code for scripts and a sentence for a person. Pure: no I/O.
import type { TagList } from '../dns/tag-list.ts';

/** RFC 8601 §2.7.1's results, as far as a verifier reports them per signature. */
export type Verdict = 'pass' | 'fail' | 'permerror' | 'temperror' | 'neutral';

export interface Judgement {
  result: Verdict;
  /** A short stable code, e.g. "body-hash", "rsa-sha1", "version". */
  reason: string;
  /** A sentence; empty for a pass. */
  comment: string;
}

/** The part of mailauth's per-signature result the judgement needs. */
export interface VerifierOutcome {
  algo?: string;
  signingDomain?: string;
  selector?: string;
  rr?: string;
  status?: { result?: string; comment?: string | false; policy?: Record<string, string | undefined> };
}

// Tags RFC 6376 §3.5 marks REQUIRED.
const REQUIRED = ['v', 'a', 'b', 'bh', 'd', 'h', 's'];

/** `tags` is our own reading of the same DKIM-Signature field, to name the tag at fault. */
export function judgeSignature(outcome: VerifierOutcome, tags: TagList): Judgement {
  const result = outcome.status?.result ?? 'none';
  const comment = outcome.status?.comment || '';
  const keyName = `${outcome.selector ?? ''}._domainkey.${outcome.signingDomain ?? ''}`;
  const tag = (name: string) => (tags.ok ? tags.tags.get(name) : undefined);
  if (result === 'pass') return { result: 'pass', reason: 'pass', comment: '' };
  if (result === 'temperror')
    return {
      result: 'temperror',
      reason: 'dns',
      comment: `the key record ${keyName} could not be looked up just now (${comment.replace(/^DNS failure: /, '')}); try again later`,
    };
  if (result === 'policy') {
    if (outcome.status?.policy?.['dkim-rules'] === 'weak-algorithm') {
      return { result: 'fail', reason: 'rsa-sha1', comment: 'rsa-sha1 signatures are not valid: verifiers must not accept them (RFC 8301 §3.1)' };
    }
    return { result: 'fail', reason: 'weak-key', comment: `the key at ${keyName} has fewer than 1024 bits, which verifiers must not accept (RFC 8301 §3.2)` };
  }
  switch (comment) {
    case 'body hash did not verify':
      return { result: 'fail', reason: 'body-hash', comment: 'the body hash does not match: the body was changed after signing' };
    case 'bad signature':
      return {
        result: 'fail',
        reason: 'signature',
        comment: 'the signature does not verify: a signed header field was changed after signing, or the key does not match',
      };
    case 'expired':
      return { result: 'fail', reason: 'expired', comment: `the signature expired at x=${tag('x') ?? '?'} (${expiry(tag('x'))}) (RFC 6376 §3.5)` };
    case 'unknown algorithm':
      return { result: 'neutral', reason: 'algorithm', comment: `unsupported a=${tag('a') || '(none)'}: only rsa-sha256 and ed25519-sha256 are verified` };
    case 'unknown canonicalization':
      return {
        result: 'permerror',
        reason: 'canonicalization',
        comment: `c=${tag('c') ?? ''} is not a canonicalization: "simple" or "relaxed" (RFC 6376 §3.4)`,
      };
    case 'signature missing required tag': {
      const missing = REQUIRED.filter((name) => tag(name) === undefined);
      return {
        result: 'permerror',
        reason: 'missing-tag',
        comment: `the signature has no ${missing.map((m) => `${m}=`).join(', ') || 'required'} tag, which RFC 6376 §3.5 requires`,
      };
    }
    case 'incompatible version':
      return { result: 'permerror', reason: 'version', comment: `v=${tag('v') ?? ''}: the only DKIM version is v=1 (RFC 6376 §3.5)` };
    case 'signature syntax error':
      return {
        result: 'permerror',
        reason: 'syntax',
        comment: tags.ok ? 'a tag of the signature is malformed (RFC 6376 §3.5)' : `the signature is not a tag list: ${tags.problem} (RFC 6376 §3.2)`,
      };
    case 'unsupported query method':
      return {
        result: 'permerror',
        reason: 'query-method',
        comment: `q=${tag('q') ?? ''} names no method this verifier knows; only dns/txt exists (RFC 6376 §3.5)`,
      };
    case 'domain mismatch':
      return tag('i') !== undefined &&
        identityDomain(tag('i')!) !== (outcome.signingDomain ?? '').toLowerCase() &&
        isSubdomain(identityDomain(tag('i')!), outcome.signingDomain ?? '')
        ? {
            result: 'fail',
            reason: 'key-strict',
            comment: `the key has t=s, so i= must be in d=${outcome.signingDomain} itself, not in a subdomain (RFC 6376 §3.6.1)`,
          }
        : { result: 'permerror', reason: 'identity', comment: `i=${tag('i') ?? ''} is not in d=${outcome.signingDomain} or a subdomain of it (RFC 6376 §3.5)` };
    case 'invalid expiration':
      return { result: 'permerror', reason: 'expiration', comment: `x=${tag('x') ?? ''} is not after t=${tag('t') ?? ''} (RFC 6376 §3.5)` };
    case 'From field not signed':
      return { result: 'permerror', reason: 'from-not-signed', comment: 'h= does not list From, which every signature must sign (RFC 6376 §5.4)' };
    case 'no key':
      return { result: 'permerror', reason: 'no-key', comment: `no key record at ${keyName} (RFC 6376 §6.1.2)` };
    case 'unknown key version':
      return { result: 'permerror', reason: 'key-record', comment: `the key record at ${keyName} has a v= other than DKIM1 (RFC 6376 §3.6.1)` };
    case 'unknown key type':
      return { result: 'permerror', reason: 'key-record', comment: `the key record at ${keyName} has a k= this verifier does not know (RFC 6376 §3.6.1)` };
    case 'invalid public key':
      return /(^|;)\s*p=\s*(;|$)/.test(outcome.rr ?? '')
        ? { result: 'permerror', reason: 'revoked', comment: `the key at ${keyName} is revoked (empty p=) (RFC 6376 §3.6.1)` }
        : { result: 'permerror', reason: 'key-record', comment: `the key record at ${keyName} does not hold a usable public key` };
    case 'inappropriate hash algorithm':
      return {
        result: 'permerror',
        reason: 'key-record',
        comment: `the key record at ${keyName} does not allow this hash algorithm (its h= tag, RFC 6376 §3.6.1)`,
      };
    case 'key not for email':
      return { result: 'permerror', reason: 'key-record', comment: `the key record at ${keyName} is not for email (its s= tag, RFC 6376 §3.6.1)` };
    case 'inappropriate key algorithm':
      return { result: 'permerror', reason: 'key-type', comment: `the key at ${keyName} is not of the type a=${tag('a') ?? ''} needs (RFC 6376 §6.1.2)` };
    default:
      // Whatever else the library says (a crypto library's error string among it) is not shown as is.
      return { result: 'permerror', reason: 'unreadable', comment: `the signature cannot be checked with the key at ${keyName}` };
  }
}

function expiry(x: string | undefined): string {
  const seconds = Number(x);
  return Number.isFinite(seconds) ? new Date(seconds * 1000).toISOString() : 'unreadable';
}

function identityDomain(i: string): string {
  return i.slice(i.lastIndexOf('@') + 1).toLowerCase();
}

function isSubdomain(child: string, parent: string): boolean {
  return child.endsWith(`.${parent.toLowerCase()}`);
}
