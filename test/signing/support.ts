// Shared fixtures for the signing tests: real keys and their DNS records.

import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { ActiveKey } from '../../src/keys/key-store.ts';

export const DOMAIN = 'example.com';

export interface TestKey {
  key: ActiveKey & { privateKey: KeyObject };
  /** "selector._domainkey.domain" */
  dnsName: string;
  /** The TXT value publishing the public key. */
  txt: string;
}

function publish(selector: string, algorithm: 'rsa' | 'ed25519', privateKey: KeyObject, publicKey: KeyObject): TestKey {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  // RFC 8463 §4.2: an Ed25519 p= is the bare 32-byte key, which is how the SPKI DER ends.
  const p = algorithm === 'rsa' ? spki.toString('base64') : spki.subarray(-32).toString('base64');
  return {
    key: { domain: DOMAIN, selector, algorithm, privateKey },
    dnsName: `${selector}._domainkey.${DOMAIN}`,
    txt: `v=DKIM1; k=${algorithm}; p=${p}`,
  };
}

export function rsaKey(selector: string, bits: number): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  return publish(selector, 'rsa', privateKey, publicKey);
}

export function ed25519Key(selector: string): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return publish(selector, 'ed25519', privateKey, publicKey);
}

export function recordsOf(keys: TestKey[]): Record<string, string> {
  return Object.fromEntries(keys.map((k) => [k.dnsName, k.txt]));
}

/** A DNS resolver in the shape mailauth expects, answering only from `records`. */
export function resolverFor(records: Record<string, string>) {
  return async (name: string, _type: string): Promise<string[][]> => {
    const txt = records[name];
    if (txt !== undefined) return [[txt]];
    throw Object.assign(new Error(`no TXT record for ${name}`), { code: 'ENOTFOUND' });
  };
}

/** Lines of a header field (split at CRLF). */
export function linesOf(field: string): string[] {
  return field.replace(/\r\n$/, '').split('\r\n');
}
