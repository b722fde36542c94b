// The self-check: before a signed message leaves, verify every signature we
// added against the store's public key (no network) and check that d= aligns
// with the From: domain. Nothing we cannot prove good goes out unnoticed.
// The verifier shares no code with the signer (see verify-bounded.ts); it
// runs in a crypto thread when the process has them, with the records of the
// keys we signed with, read here from the store.
import type { ActiveKey } from '../keys/store.ts';
import type { KeyStore } from '../keys/key-store.ts';
import { messageFromBuffer } from '../message/incoming.ts';
import type { Octets } from '../message/octets.ts';
import type { AlignmentMode } from '../signing/alignment.ts';
import { sharedCrypto, type DigestCrypto } from '../signing/crypto-pool.ts';
import { recordKey, type PublishedRecords } from '../signing/published-records.ts';

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

/** Throws CryptoUnavailable when the verification cannot be done just now. */
export async function selfCheck(
  signed: Buffer | SignedMessage,
  added: ActiveKey[],
  store: KeyStore,
  alignment: AlignmentMode,
  crypto: DigestCrypto = sharedCrypto(),
): Promise<SelfCheck> {
  const { header, body } = Buffer.isBuffer(signed) ? messageFromBuffer(signed) : signed;
  const verification = await crypto.verifyMessage(header, body, publishedRecords(added, store), alignment);
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

/**
 * What the store publishes for the keys we signed with: the only records the
 * check needs, since only those signatures are judged (any other signature
 * in the message finds no key).
 */
function publishedRecords(added: ActiveKey[], store: KeyStore): PublishedRecords {
  const records: Record<string, string> = {};
  for (const key of added) {
    const name = recordKey(`${key.selector}._domainkey.${key.domain}`);
    const value = store.publishedValue(name);
    if (value !== undefined) records[name] = value;
  }
  return records;
}
