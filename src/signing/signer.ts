// DKIM signing (RFC 6376 §5) with rsa-sha256 and ed25519-sha256 (RFC 8463).
// rsa-sha1 is deliberately absent (RFC 8301).

import { createHash, sign, type KeyObject } from 'node:crypto';
import { parseHeader, splitMessage } from '../message/header.ts';
import { BodyHasher } from './body-hash.ts';
import { relaxedHeader } from './canonicalization/relaxed.ts';
import { simpleHeader } from './canonicalization/simple.ts';
import type { Canonicalization } from './canonicalization/types.ts';
import { selectHeaders } from './header-selection.ts';
import { completeSignatureField, signatureFieldPrefix } from './signature-header.ts';

export type { Canonicalization } from './canonicalization/types.ts';

export interface SigningKey {
  domain: string;
  selector: string;
  algorithm: 'rsa' | 'ed25519';
  /** Parsed once by the caller and reused for every message. */
  privateKey: KeyObject;
}

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
 * Signs a CRLF message with every key. Returns one "DKIM-Signature: ...\r\n"
 * field per key, first key's field first, to be prepended to the message
 * unchanged. All keys share t=, h= and bh=, so both are computed once.
 */
export function signMessage(message: Buffer, keys: SigningKey[], options: SignOptions): string {
  if (keys.length === 0) throw new Error('DKIM signing needs at least one key');
  keys.forEach(checkKey);

  const { header, body } = splitMessage(message);
  const fields = parseHeader(header);
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

  // The body is already in memory; the canonicalizer walks it without copying it.
  const hasher = new BodyHasher(options.bodyCanonicalization);
  hasher.update(body);
  const bodyHash = hasher.digest();

  const canonHeader = options.headerCanonicalization === 'relaxed' ? relaxedHeader : simpleHeader;
  const selection = selectHeaders(fields, options.headers, options.oversign);
  const signedFields = Buffer.from(selection.fields.map((f) => canonHeader(f.raw)).join(''), 'latin1');

  return keys
    .map((key) => {
      const prefix = signatureFieldPrefix({
        algorithm: ALGORITHM[key.algorithm],
        canonicalization: `${options.headerCanonicalization}/${options.bodyCanonicalization}`,
        domain: key.domain,
        selector: key.selector,
        timestamp,
        expiration,
        bodyLength: options.bodyLength ? hasher.canonicalLength : undefined,
        headers: selection.names,
        bodyHash,
      });
      // Our own field, b= empty, canonicalized but without its final CRLF (RFC 6376 §3.7).
      const ownField = canonHeader(prefix).slice(0, -2);
      const data = Buffer.concat([signedFields, Buffer.from(ownField, 'latin1')]);
      const signature =
        key.algorithm === 'rsa'
          ? sign('sha256', data, key.privateKey)
          : // RFC 8463 §3: PureEdDSA over the SHA-256 of the data, not over the data.
            sign(null, createHash('sha256').update(data).digest(), key.privateKey);
      return completeSignatureField(prefix, signature.toString('base64')) + '\r\n';
    })
    .join('');
}

function checkKey(key: SigningKey): void {
  const what = `key ${key.selector}._domainkey.${key.domain}`;
  if (key.privateKey.type !== 'private') throw new Error(`${what} is not a private key`);
  const type = key.privateKey.asymmetricKeyType;
  if (type !== key.algorithm) throw new Error(`${what} is declared ${key.algorithm} but is ${type ?? 'unknown'}`);
  const bits = key.privateKey.asymmetricKeyDetails?.modulusLength;
  if (type === 'rsa' && (bits === undefined || bits < MIN_RSA_BITS)) {
    throw new Error(`${what} has ${bits ?? '?'} bits; RSA keys need at least ${MIN_RSA_BITS}`);
  }
}
