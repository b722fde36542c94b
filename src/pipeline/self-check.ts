// The self-check: before a signed message leaves, verify every signature we
// added against the store's public key (no network) and check that d= aligns
// with the From: domain. Nothing we cannot prove good goes out unnoticed.
// The verifier shares no code with the signer (see verify-bounded.ts).
import type { ActiveKey } from '../keys/store.ts';
import type { KeyStore } from '../keys/key-store.ts';
import { messageFromBuffer } from '../message/incoming.ts';
import type { Octets } from '../message/octets.ts';
import { storeResolver } from '../keys/resolver.ts';
import type { AlignmentMode } from '../signing/alignment.ts';
import type { DigestCrypto } from '../signing/crypto-pool.ts';
import { verifyBounded } from '../signing/verify-bounded.ts';

/** A signed message: its header block and its body. */
export interface SignedMessage {
  header: Buffer;
  body: Octets;
}

export interface SelfCheck {
  pass: boolean;
  /** One line: what passed, or what failed and why. */
  detail: string;
}

/** Throws CryptoUnavailable when the key operation cannot be done just now. */
export async function selfCheck(
  signed: Buffer | SignedMessage,
  added: ActiveKey[],
  store: KeyStore,
  alignment: AlignmentMode,
  crypto?: DigestCrypto,
): Promise<SelfCheck> {
  const { header, body } = Buffer.isBuffer(signed) ? messageFromBuffer(signed) : signed;
  const verification = await verifyBounded(header, body, storeResolver(store), alignment, crypto);
  if (verification.fromFields !== 1) {
    return { pass: false, detail: `${verification.fromFields} From: headers` };
  }
  const problems: string[] = [];
  for (const key of added) {
    const found = verification.signatures.find((s) => s.domain === key.domain && s.selector === key.selector);
    const name = `d=${key.domain} s=${key.selector}`;
    if (!found) problems.push(`${name}: signature not found`);
    else if (found.result !== 'pass') problems.push(`${name}: ${found.result} (${found.comment})`);
    else if (!found.aligned) problems.push(`${name}: not aligned with From: ${verification.fromDomains.join(', ')} (${alignment})`);
  }
  if (problems.length) return { pass: false, detail: problems.join('; ') };
  return { pass: true, detail: added.map((k) => `d=${k.domain} s=${k.selector} pass`).join('; ') };
}
