// What the key store writes about a key held in a PKCS#11 token, and the
// object templates the token is given. A token key is named by an RFC 7512
// URI (token label and CKA_ID), kept where a file key keeps its file name.
import { createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import type { Algorithm } from './key-material.ts';

/** PKCS#11 3.0 values pkcs11js does not name yet. */
export const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055;
export const CKM_EDDSA = 0x1057;
export const CKK_EC_EDWARDS = 0x40;
/** CKA_EC_PARAMS of Ed25519: the DER of OID 1.3.101.112 (RFC 8410). */
export const ED25519_PARAMS = Buffer.from('06032b6570', 'hex');

export interface TokenObjectRef {
  token: string;
  /** CKA_ID, hex. */
  id: string;
}

const URI_PREFIX = 'pkcs11:';

export function isTokenUri(file: string): boolean {
  return file.startsWith(URI_PREFIX);
}

/** pkcs11:token=<label>;id=%01%02… (RFC 7512 §2.3: every octet of the id percent-encoded). */
export function tokenUri(ref: TokenObjectRef): string {
  const id = ref.id.replace(/../g, (octet) => `%${octet}`);
  return `${URI_PREFIX}token=${encodeURIComponent(ref.token)};id=${id}`;
}

export function parseTokenUri(uri: string): TokenObjectRef {
  const attributes = new Map(
    uri
      .slice(URI_PREFIX.length)
      .split(';')
      .map((part) => [part.slice(0, part.indexOf('=')), part.slice(part.indexOf('=') + 1)] as const),
  );
  const token = attributes.get('token');
  const id = attributes.get('id');
  if (!isTokenUri(uri) || token === undefined || id === undefined) throw new Error(`not a token key: ${uri}`);
  return { token: decodeURIComponent(token), id: id.replaceAll('%', '').toLowerCase() };
}

/** A fresh CKA_ID: 16 random octets, so keys made by several relays never collide. */
export function newObjectId(): string {
  return randomBytes(16).toString('hex');
}

/** The p= value from the public key object's attributes (RSA: modulus and exponent; Ed25519: CKA_EC_POINT). */
export function publicDataOf(algorithm: Algorithm, attributes: { modulus?: Buffer; exponent?: Buffer; point?: Buffer }): string {
  if (algorithm === 'ed25519') {
    const point = attributes.point!;
    // Tokens give the point as a DER OCTET STRING (04 20 …) or as the 32 octets themselves.
    const raw = point.length === 34 && point[0] === 0x04 && point[1] === 0x20 ? point.subarray(2) : point;
    if (raw.length !== 32) throw new Error(`the token returned an Ed25519 public key of ${raw.length} octets`);
    return raw.toString('base64');
  }
  const key = createPublicKey({ key: { kty: 'RSA', n: base64url(attributes.modulus!), e: base64url(attributes.exponent!) }, format: 'jwk' });
  return key.export({ type: 'spki', format: 'der' }).toString('base64');
}

function base64url(octets: Buffer): string {
  return octets.toString('base64url');
}

/** The components of a PEM private key, as C_CreateObject takes them (CKA_* name → value). */
export function privateComponents(pem: string): { algorithm: Algorithm; values: Record<string, Buffer> } {
  const key: KeyObject = createPrivateKey(pem);
  const jwk = key.export({ format: 'jwk' });
  const octets = (v: string | undefined) => Buffer.from(v!, 'base64url');
  if (key.asymmetricKeyType === 'ed25519') return { algorithm: 'ed25519', values: { value: octets(jwk.d) } };
  return {
    algorithm: 'rsa',
    values: {
      modulus: octets(jwk.n),
      publicExponent: octets(jwk.e),
      privateExponent: octets(jwk.d),
      prime1: octets(jwk.p),
      prime2: octets(jwk.q),
      exponent1: octets(jwk.dp),
      exponent2: octets(jwk.dq),
      coefficient: octets(jwk.qi),
    },
  };
}
