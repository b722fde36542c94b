// DKIM signing (RFC 6376 §5) with rsa-sha256 and ed25519-sha256 (RFC 8463).
// rsa-sha1 is deliberately absent (RFC 8301).

import type { ActiveKey } from '../keys/key-store.ts';
import { createHash, type KeyObject } from 'node:crypto';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { parseHeader, splitMessage, type HeaderField } from '../message/header.ts';
import { bufferOctets, CHUNK, type Octets } from '../message/octets.ts';
import { BodyHasher } from './body-hash.ts';
import { relaxedHeader } from './canonicalization/relaxed.ts';
import { simpleHeader } from './canonicalization/simple.ts';
import type { Canonicalization } from './canonicalization/types.ts';
import { selectHeaders } from './header-selection.ts';
import { sharedCrypto, type DigestCrypto } from './crypto-pool.ts';
import { signDigest } from './digest-signature.ts';
import { completeSignatureField, signatureFieldPrefix } from './signature-header.ts';
import { signWith } from './token-signature.ts';
import type { TokenKey } from '../keys/pkcs11-token.ts';

export type { Canonicalization } from './canonicalization/types.ts';

export interface SignOptions {
  headerCanonicalization: Canonicalization;
  bodyCanonicalization: Canonicalization;
  /** Header names to sign. */
  headers: string[];
  /** Names listed once more than they occur, so none can be added later. */
  oversign: string[];
  /** t=, default now. */
  signTime?: Date;
  /** x= = t + this, when set. */
  expiresInSeconds?: number;
  /** Emit l= (off by default: RFC 6376 §8.2, appended content would still verify). */
  bodyLength?: boolean;
}

const ALGORITHM = { rsa: 'rsa-sha256', ed25519: 'ed25519-sha256' } as const;

/** RFC 8301 §3.2: verifiers must reject RSA keys shorter than this. */
const MIN_RSA_BITS = 1024;

/**
 * Signs a CRLF message with every key, in this thread. Returns one
 * "DKIM-Signature: ...\r\n" field per key, first key's field first, to be
 * prepended to the message unchanged. All keys share t=, h= and bh=, so both
 * are computed once.
 */
export function signMessage(message: Buffer, keys: ActiveKey[], options: SignOptions): string {
  const { header, body } = splitMessage(message);
  const hasher = new BodyHasher(options.bodyCanonicalization);
  hasher.update(body);
  const plans = planSignatures({ fields: parseHeader(header), bodyHash: hasher.digest(), bodyLength: hasher.canonicalLength }, keys, options);
  return plans.map((p) => completeField(p, signDigest(p.key.algorithm, p.digest, fileKey(p.key)))).join('');
}

export interface SignAsyncOptions {
  /** The message's header fields, when the caller parsed them already (parse once). */
  fields?: HeaderField[];
  /** Where the key operations run: default the process's crypto pool, if any. */
  crypto?: DigestCrypto;
}

/**
 * As signMessage, without holding up the event loop: the body is hashed in
 * slices between which other work runs, and the key operations go to the
 * crypto pool. Throws CryptoUnavailable when crypto cannot be done just now.
 */
export async function signMessageAsync(message: Buffer, keys: ActiveKey[], options: SignOptions, more: SignAsyncOptions = {}): Promise<string> {
  const { header, body } = splitMessage(message);
  const fields = more.fields ?? parseHeader(header);
  return signHashed({ fields, ...(await hashOctets(bufferOctets(body), options.bodyCanonicalization)) }, keys, options, more.crypto);
}

/** The canonical body's hash and length, read chunk by chunk: the body is never held whole. */
export async function hashOctets(body: Octets, canonicalization: Canonicalization): Promise<{ bodyHash: string; bodyLength: number }> {
  const hasher = new BodyHasher(canonicalization);
  for await (const chunk of body.chunks()) {
    hasher.update(chunk);
    // Between chunks of a body in memory too, other sessions get their turn.
    if (chunk.length === CHUNK) await yieldToEventLoop();
  }
  return { bodyHash: hasher.digest(), bodyLength: hasher.canonicalLength };
}

/** What a signature covers: the header fields, and the body by its hash. */
export interface HashedMessage {
  fields: HeaderField[];
  /** bh=, base64 SHA-256 of the canonical body. */
  bodyHash: string;
  /** Canonical body octets, for l=. */
  bodyLength: number;
}

/** Signs a message given as its fields and body hash (the body hashed already, once). */
export async function signHashed(message: HashedMessage, keys: ActiveKey[], options: SignOptions, crypto: DigestCrypto = sharedCrypto()): Promise<string> {
  const plans = planSignatures(message, keys, options);
  const signatures = await Promise.all(plans.map((p) => signWith(crypto, p.key.algorithm, p.digest, p.key.privateKey)));
  return plans.map((p, i) => completeField(p, signatures[i]!)).join('');
}

interface Plan {
  key: ActiveKey;
  /** The field up to "b=". */
  prefix: string;
  /** SHA-256 of the signed header data (RFC 6376 §3.7). */
  digest: Buffer;
}

function planSignatures(message: HashedMessage, keys: ActiveKey[], options: SignOptions): Plan[] {
  if (keys.length === 0) throw new Error('DKIM signing needs at least one key');
  keys.forEach(checkKey);
  const { fields, bodyHash } = message;
  if (!fields.some((f) => f.key === 'from')) throw new Error('cannot DKIM-sign a message without a From header');

  // One timestamp for every signature and for x= (computing it twice once made t= and x= disagree).
  const timestamp = Math.floor((options.signTime ?? new Date()).getTime() / 1000);
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) throw new Error('invalid signTime');
  let expiration: number | undefined;
  if (options.expiresInSeconds !== undefined) {
    const n = options.expiresInSeconds;
    if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`expiresInSeconds must be a positive integer, got ${n}`);
    expiration = timestamp + n;
  }

  const canonHeader = options.headerCanonicalization === 'relaxed' ? relaxedHeader : simpleHeader;
  const selection = selectHeaders(fields, options.headers, options.oversign);
  const signedFields = Buffer.from(selection.fields.map((f) => canonHeader(f.raw)).join(''), 'latin1');

  return keys.map((key) => {
    const prefix = signatureFieldPrefix({
      algorithm: ALGORITHM[key.algorithm],
      canonicalization: `${options.headerCanonicalization}/${options.bodyCanonicalization}`,
      domain: key.domain,
      selector: key.selector,
      timestamp,
      expiration,
      bodyLength: options.bodyLength ? message.bodyLength : undefined,
      headers: selection.names,
      bodyHash,
    });
    // Our own field, b= empty, canonicalized but without its final CRLF (RFC 6376 §3.7).
    const ownField = canonHeader(prefix).slice(0, -2);
    const digest = createHash('sha256').update(signedFields).update(ownField, 'latin1').digest();
    return { key, prefix, digest };
  });
}

function completeField(plan: Plan, signature: Buffer): string {
  return completeSignatureField(plan.prefix, signature.toString('base64')) + '\r\n';
}

/** The in-memory key of a synchronous signing; a token signs only asynchronously. */
function fileKey(key: ActiveKey): KeyObject {
  if ('kind' in key.privateKey) throw new Error(`key ${key.selector}._domainkey.${key.domain} is in a PKCS#11 token: sign with signMessageAsync`);
  return key.privateKey;
}

function checkKey(key: ActiveKey): void {
  const what = `key ${key.selector}._domainkey.${key.domain}`;
  if ('kind' in key.privateKey) {
    const token = key.privateKey;
    if (token.algorithm !== key.algorithm) throw new Error(`${what} is declared ${key.algorithm} but is ${token.algorithm}`);
    if (token.algorithm === 'rsa' && token.bits < MIN_RSA_BITS) throw new Error(`${what} has ${token.bits} bits; RSA keys need at least ${MIN_RSA_BITS}`);
    return;
  }
  if (key.privateKey.type !== 'private') throw new Error(`${what} is not a private key`);
  const type = key.privateKey.asymmetricKeyType;
  if (type !== key.algorithm) throw new Error(`${what} is declared ${key.algorithm} but is ${type ?? 'unknown'}`);
  const bits = key.privateKey.asymmetricKeyDetails?.modulusLength;
  if (type === 'rsa' && (bits === undefined || bits < MIN_RSA_BITS)) {
    throw new Error(`${what} has ${bits ?? '?'} bits; RSA keys need at least ${MIN_RSA_BITS}`);
  }
}
