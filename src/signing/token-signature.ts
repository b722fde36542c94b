// A signature by a key in memory (the crypto pool's threads) or by a key in a
// PKCS#11 token (the token signs; pkcs11-token.ts keeps the event loop free).
// A token that fails is a temporary problem like a crypto thread that died:
// CryptoUnavailable, so the client hears 451 and retries, and the message is
// never sent on unsigned.
import type { KeyObject } from 'node:crypto';
import { KeyFileError } from '../keys/key-file.ts';
import type { TokenKey } from '../keys/pkcs11-token.ts';
import { CryptoUnavailable, type DigestCrypto } from './crypto-pool.ts';
import type { KeyAlgorithm } from './digest-signature.ts';

export async function signWith(crypto: DigestCrypto, algorithm: KeyAlgorithm, digest: Uint8Array, key: KeyObject | TokenKey): Promise<Buffer> {
  if (!('kind' in key)) return crypto.sign(algorithm, digest, key);
  try {
    return await key.sign(digest);
  } catch (err) {
    if (err instanceof KeyFileError) throw new CryptoUnavailable(err.message);
    throw err;
  }
}
