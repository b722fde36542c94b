// Private keys kept in a shared database are sealed: AES-256-GCM under a
// key-encryption key that lives only in a file on each relay, a fresh 96-bit
// nonce per seal (NIST SP 800-38D §8.2), and the key's id as associated data,
// so a sealed key copied onto another row does not open. A dump of the
// database alone reveals no private key.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { UserError } from '../common/errors.ts';

const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const VERSION = 1;

export class SealError extends Error {}

/** version (1) | nonce (12) | tag (16) | ciphertext of the PKCS#8 PEM. */
export function seal(kek: Buffer, keyId: number, pem: string): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', kek, nonce);
  cipher.setAAD(associatedData(keyId));
  const body = Buffer.concat([cipher.update(pem, 'utf8'), cipher.final()]);
  return Buffer.concat([Buffer.from([VERSION]), nonce, cipher.getAuthTag(), body]);
}

/** The PEM sealed for `keyId`; SealError when the key-encryption key or the id does not match, or the blob was altered. */
export function unseal(kek: Buffer, keyId: number, sealed: Buffer): string {
  if (sealed.length < 1 + NONCE_BYTES + TAG_BYTES || sealed[0] !== VERSION) throw new SealError('not a sealed key of a known format');
  const nonce = sealed.subarray(1, 1 + NONCE_BYTES);
  const tag = sealed.subarray(1 + NONCE_BYTES, 1 + NONCE_BYTES + TAG_BYTES);
  try {
    const decipher = createDecipheriv('aes-256-gcm', kek, nonce);
    decipher.setAAD(associatedData(keyId));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(sealed.subarray(1 + NONCE_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
  } catch {
    throw new SealError('does not open with this key-encryption key');
  }
}

function associatedData(keyId: number): Buffer {
  return Buffer.from(`dkim-relay key ${keyId}`);
}

/**
 * A secret file (key-encryption key, database password): a regular file, not
 * a link, that only its owner can read; its content, trimmed. `what` names the
 * setting in the one-line error.
 */
export function readSecretFile(file: string, what: string): string {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError(`${what} ${file} does not exist`, 'create it (see the documentation of this setting) or correct the path');
    if (code === 'ELOOP') throw new UserError(`${what} ${file} is a symbolic link`, 'put the file itself there');
    throw new UserError(`${what} ${file} cannot be read (${code})`, 'run as the user the relay runs as, or as root');
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new UserError(`${what} ${file} is not a regular file`, 'put the file itself there');
    const mode = stat.mode & 0o777;
    if (mode & 0o077) {
      throw new UserError(`${what} ${file} is readable by others (mode ${mode.toString(8).padStart(4, '0')})`, `run: chmod 600 ${file}`);
    }
    return readFileSync(fd, 'utf8').trim();
  } finally {
    closeSync(fd);
  }
}

/** keys.encryptionKeyFile: 32 random bytes in base64, as `openssl rand -base64 32` prints them. */
export function readEncryptionKey(file: string, what = 'keys.encryptionKeyFile'): Buffer {
  const text = readSecretFile(file, what);
  const key = /^[A-Za-z0-9+/]{43}=$/.test(text) ? Buffer.from(text, 'base64') : Buffer.alloc(0);
  if (key.length !== 32) {
    throw new UserError(`${what} ${file} does not hold 32 bytes in base64`, `make one with: (umask 077; openssl rand -base64 32 > ${file})`);
  }
  return key;
}
