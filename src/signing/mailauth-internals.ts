// The one place that reaches into mailauth beyond its documented API: its
// DKIM verifier driven with a header block alone (without the byte-by-byte
// stream parser of dkimVerify, which costs as much as the rest), its body
// canonicalization and hashing, and its DKIM key-record parser, which the
// self-check uses to stay independent of our signer. mailauth has no
// "exports" map, so these modules load, but a release may change them
// without notice; going through this module, such an upgrade breaks here
// (and in the self-check's tests), in one place.
import { createRequire } from 'node:module';
import type { DNSResolver, DKIMVerifyResult } from 'mailauth';

const require = createRequire(import.meta.url);

export interface MailauthBodyHash {
  update(chunk: Buffer): void;
  digest(encoding: 'base64'): string;
}

export interface MailauthPublicKey {
  /** SPKI PEM. */
  publicKey: string;
  keyType: 'rsa' | 'ed25519';
  /** The record as resolved, whitespace removed. */
  rr: string;
}

const body = require('mailauth/lib/dkim/body') as {
  dkimBody(canonicalization: string, algorithm: string, maxBodyLength?: number): MailauthBodyHash;
};
const { DkimVerifier } = require('mailauth/lib/dkim/dkim-verifier') as {
  DkimVerifier: new (options: { resolver: DNSResolver; minBitLength: number; strict: boolean }) => {
    messageHeaders(headers: unknown): Promise<void>;
    finalChunk(): Promise<void>;
    results: DKIMVerifyResult['results'];
    headerFrom: string[];
    fromFields: number;
  };
};
const tools = require('mailauth/lib/tools') as {
  parseHeaders(header: Buffer): unknown;
  getPublicKey(type: 'DKIM', name: string, minBitLength: number, resolver: DNSResolver, options: { hashAlgo: string }): Promise<MailauthPublicKey>;
};

/** mailauth's body hasher for a c= body canonicalization, limited to l= octets when given. */
export function mailauthBodyHash(canonicalization: 'relaxed' | 'simple', maxBodyLength?: number): MailauthBodyHash {
  return body.dkimBody(canonicalization, 'sha256', maxBodyLength);
}

/** mailauth's reading of the DKIM key record at `name`; throws with mailauth's error code when unusable. */
export function mailauthPublicKey(name: string, resolver: DNSResolver, minBitLength: number): Promise<MailauthPublicKey> {
  return tools.getPublicKey('DKIM', name, minBitLength, resolver, { hashAlgo: 'sha256' });
}

/**
 * mailauth's DKIM verification, in its strict mode, of a header block (every field with its CRLF,
 * then the empty line) as the header of a message with an empty body: the
 * results of dkimVerify() for that message, without its stream parser.
 */
export async function mailauthVerifyHeader(
  header: Buffer,
  resolver: DNSResolver,
  minBitLength: number,
): Promise<Pick<DKIMVerifyResult, 'results' | 'headerFrom' | 'fromFields'>> {
  const verifier = new DkimVerifier({ resolver, minBitLength, strict: true });
  await verifier.messageHeaders(tools.parseHeaders(header));
  await verifier.finalChunk();
  return { results: verifier.results, headerFrom: verifier.headerFrom, fromFields: verifier.fromFields };
}
