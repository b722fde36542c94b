// SMTP AUTH passwords, stored as scrypt hashes:
//   scrypt$N=16384,r=8,p=1$<salt base64>$<hash base64>
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { HASH_LENGTH as LENGTH, parseHash } from '../common/password-hash.ts';

const N = 16384;
const R = 8;
const P = 1;

/**
 * scrypt runs on libuv's thread pool (4 threads), which the spool's file
 * writes and fsyncs share: a flood of logins must never take all of it, or
 * every message waits behind the password checks for its 250. So at most
 * this many run at once; the rest wait their turn in order.
 */
export const CHECKS_AT_ONCE = 1;
let running = 0;
const waiting: (() => void)[] = [];

async function derive(password: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  if (running >= CHECKS_AT_ONCE) await new Promise<void>((resolve) => waiting.push(resolve));
  else running++;
  try {
    return await new Promise((resolve, reject) =>
      scrypt(password, salt, LENGTH, { N: n, r, p, maxmem: 256 * n * r }, (err, key) => (err ? reject(err) : resolve(key))),
    );
  } finally {
    // The slot passes straight to the next in line, or is freed.
    const next = waiting.shift();
    if (next) next();
    else running--;
  }
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await derive(password, salt, N, R, P);
  return `scrypt$N=${N},r=${R},p=${P}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export async function checkPassword(password: string, stored: string): Promise<boolean> {
  const parsed = parseHash(stored);
  if (!parsed) return false;
  const actual = await derive(password, parsed.salt, parsed.n, parsed.r, parsed.p);
  return timingSafeEqual(actual, parsed.hash);
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
