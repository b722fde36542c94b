// Verification of our own signatures without re-reading the whole message:
// mailauth's verifier sees only the header block (the signature fields it
// parses, the h= fields it selects and canonicalizes), and the body is
// hashed by mailauth's own body canonicalizer, in slices. Nothing here uses
// our signer's canonicalization or body hash, so a bug there cannot vouch
// for itself. The public key is mailauth's reading of the record the key
// store publishes; the key operation is the crypto pool's.
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { DKIMResult, DNSResolver } from 'mailauth';
import { CHUNK, type Octets } from '../message/octets.ts';
import type { AlignmentMode } from './alignment.ts';
import { sharedCrypto, type DigestCrypto } from './crypto-pool.ts';
import { mailauthBodyHash, mailauthPublicKey, mailauthVerifyHeader } from './mailauth-internals.ts';
import { describeVerification, MIN_BITS, type Verification } from './verify.ts';

const BODY_HASH_MISMATCH = 'body hash did not verify';

/** `header` is the header block (fields, then the empty line); the body is read only to hash it. */
export async function verifyBounded(
  header: Buffer,
  body: Octets,
  resolver: DNSResolver,
  alignment: AlignmentMode,
  crypto: DigestCrypto = sharedCrypto(),
): Promise<Verification> {
  // The header block and an empty body: mailauth checks everything but the body hash,
  // and reports a body hash mismatch unless the body is empty too.
  const outcome = await mailauthVerifyHeader(header, resolver, MIN_BITS);
  const bodyHashes = new Map<string, Promise<string>>();
  for (const r of outcome.results) {
    if (r.status?.result === 'pass' || r.status?.comment !== BODY_HASH_MISMATCH) continue;
    const canonicalization = (r.format ?? '').split('/')[1]?.trim().toLowerCase() === 'relaxed' ? 'relaxed' : 'simple';
    const limit = r.canonBodyLengthLimited ? r.canonBodyLengthLimit : undefined;
    const key = `${canonicalization}:${limit ?? ''}`;
    if (!bodyHashes.has(key)) bodyHashes.set(key, hashBody(body, canonicalization, limit));
    if ((await bodyHashes.get(key)) === r.bodyHashExpecting) Object.assign(r.status, await checkHeaderSignature(r, resolver, crypto));
  }
  return describeVerification(header, outcome, alignment);
}

type MailauthResult = DKIMResult;

async function hashBody(body: Octets, canonicalization: 'relaxed' | 'simple', limit: number | undefined): Promise<string> {
  const hash = mailauthBodyHash(canonicalization, limit);
  for await (const chunk of body.chunks()) {
    // The chunk's buffer is reused by the next read: the hasher keeps a copy of what it holds over.
    hash.update(chunk);
    // Between chunks of a body in memory too, other sessions get their turn.
    if (chunk.length === CHUNK) await yieldToEventLoop();
  }
  return hash.digest('base64');
}

type Status = { result: string; comment: string; policy?: Record<string, string | undefined> };

/**
 * The b= signature over mailauth's canonicalized header, checked with the
 * published key; the status is worded as mailauth's own, so the same
 * judgement reads both.
 */
async function checkHeaderSignature(r: MailauthResult, resolver: DNSResolver, crypto: DigestCrypto): Promise<Status> {
  if (r.algo === 'rsa-sha1') return { result: 'policy', comment: 'weak algorithm', policy: { 'dkim-rules': 'weak-algorithm' } };
  const algorithm = r.algo === 'rsa-sha256' ? 'rsa' : r.algo === 'ed25519-sha256' ? 'ed25519' : null;
  if (!algorithm) return { result: 'neutral', comment: 'unknown algorithm' };
  const canonical = r.signingHeaders?.canonicalizedHeader;
  if (canonical === undefined || !r.signature) return { result: 'neutral', comment: 'signature syntax error' };
  let key: KeyObject;
  try {
    key = await publicKey(`${r.selector}._domainkey.${r.signingDomain}`, resolver);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ESHORTKEY') return { result: 'policy', comment: 'weak key', policy: { 'dkim-rules': 'weak-key' } };
    if (code === 'ENOTFOUND' || code === 'ENODATA') return { result: 'neutral', comment: 'no key' };
    return { result: 'neutral', comment: 'invalid public key' };
  }
  if (key.asymmetricKeyType !== algorithm) return { result: 'neutral', comment: 'inappropriate key algorithm' };
  // rsa-sha256 and ed25519-sha256 both sign the SHA-256 of the header data (RFC 6376 §3.7, RFC 8463 §3).
  const digest = createHash('sha256').update(Buffer.from(canonical, 'base64')).digest();
  const valid = await crypto.verify(algorithm, digest, key, Buffer.from(String(r.signature), 'base64'));
  return valid ? { result: 'pass', comment: '' } : { result: 'fail', comment: 'bad signature' };
}

// Parsed public keys by record text: a record read from the store again
// costs a lookup, not a key parse. Bounded: records change only on rotation.
const keyCache = new Map<string, KeyObject>();
const KEY_CACHE_SIZE = 64;

async function publicKey(name: string, resolver: DNSResolver): Promise<KeyObject> {
  const answer = await resolver(name, 'TXT');
  const record = ([] as string[]).concat(answer[0] ?? []).join('');
  const cached = keyCache.get(record);
  if (cached) return cached;
  const parsed = await mailauthPublicKey(name, async () => answer, MIN_BITS);
  const key = createPublicKey(parsed.publicKey);
  if (keyCache.size >= KEY_CACHE_SIZE) keyCache.delete(keyCache.keys().next().value!);
  keyCache.set(record, key);
  return key;
}
