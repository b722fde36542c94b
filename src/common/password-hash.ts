// The stored form of an AUTH password, read without checking one:
//   scrypt$N=16384,r=8,p=1$<salt base64>$<hash base64>
// The configuration refuses a hash no password could match (see parseHash);
// src/access/passwords.ts makes and checks them.

/** Octets of the scrypt output. */
export const HASH_LENGTH = 32;
const LENGTH = HASH_LENGTH;

const COSTS = /^N=(\d{1,8}),r=(\d{1,3}),p=(\d{1,3})$/;
const isBase64 = (text: string): boolean => text.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(text);

export interface StoredHash {
  n: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

/**
 * A stored hash as `checkPassword` uses it, or null when no password could
 * ever match it: the configuration refuses those, since they would make
 * every AUTH of that user fail without a word.
 */
export function parseHash(stored: string): StoredHash | null {
  const [scheme, costs, salt64, hash64, ...rest] = stored.split('$');
  const match = COSTS.exec(costs ?? '');
  if (scheme !== 'scrypt' || hash64 === undefined || !match || !isBase64(salt64 ?? '') || !isBase64(hash64 ?? '') || rest.length > 0) return null;
  const [n, r, p] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const salt = Buffer.from(salt64!, 'base64');
  const hash = Buffer.from(hash64!, 'base64');
  // scrypt needs N a power of two above 1; larger costs than these would let one AUTH exhaust memory.
  const costOk = n > 1 && n <= 1 << 20 && (n & (n - 1)) === 0 && r >= 1 && r <= 32 && p >= 1 && p <= 16;
  if (!costOk || salt.length < 8 || hash.length !== LENGTH) return null;
  return { n, r, p, salt, hash };
}
