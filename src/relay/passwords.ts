// SMTP AUTH passwords, stored as scrypt hashes:
//   scrypt$N=16384,r=8,p=1$<salt base64>$<hash base64>
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

const N = 16384;
const R = 8;
const P = 1;
const LENGTH = 32;

function derive(password: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password, salt, LENGTH, { N: n, r, p, maxmem: 256 * n * r }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await derive(password, salt, N, R, P);
  return `scrypt$N=${N},r=${R},p=${P}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export async function checkPassword(password: string, stored: string): Promise<boolean> {
  const match = /^scrypt\$N=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(stored);
  if (!match) return false;
  const expected = Buffer.from(match[5]!, 'base64');
  const actual = await derive(password, Buffer.from(match[4]!, 'base64'), Number(match[1]), Number(match[2]), Number(match[3]));
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/**
 * A hash no password matches (its salt and hash are zeros), made with the
 * same parameters as ours: unknown user names cost the same scrypt work as
 * known ones, so the time of an answer does not tell which names exist.
 */
const DUMMY = `scrypt$N=${N},r=${R},p=${P}$${Buffer.alloc(16).toString('base64')}$${Buffer.alloc(LENGTH).toString('base64')}`;

/** Checks a user's password against `users` (name → stored hash); an unknown name is checked against the dummy. */
export async function checkUser(users: ReadonlyMap<string, string>, name: string, password: string): Promise<boolean> {
  const stored = users.get(name);
  const ok = await checkPassword(password, stored ?? DUMMY);
  return ok && stored !== undefined;
}
