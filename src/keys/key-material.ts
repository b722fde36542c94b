// Generating, importing and describing key pairs. Private keys are PKCS#8 PEM.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { UserError } from '../common/errors.ts';
import { trimEndOf } from '../message/trim.ts';

export type Algorithm = 'rsa' | 'ed25519';
export const RSA_SIZES = [1024, 2048, 3072, 4096] as const;

export interface KeyMaterial {
  algorithm: Algorithm;
  bits: number;
  /** PKCS#8 PEM. Never logged. */
  privatePem: string;
  /** The p= value: base64 SPKI for RSA, the raw 32-byte key for Ed25519 (RFC 8463). */
  publicData: string;
}

export function generateKey(algorithm: Algorithm, bits = 2048): KeyMaterial {
  if (algorithm === 'ed25519') return describeKey(generateKeyPairSync('ed25519').privateKey);
  checkRsaSize(bits);
  return describeKey(generateKeyPairSync('rsa', { modulusLength: bits }).privateKey);
}

/** The RSA sizes the store makes, wherever the key is generated. */
export function checkRsaSize(bits: number): void {
  if (!(RSA_SIZES as readonly number[]).includes(bits)) {
    throw new UserError(
      `RSA keys of ${bits} bits are not offered`,
      `use --bits ${RSA_SIZES.join(', ')} (receivers ignore keys under 1024 bits, RFC 8301; 2048 is the usual choice)`,
    );
  }
}

/** Reads a PEM private key (PKCS#1 or PKCS#8, RSA or Ed25519). */
export function importKey(pem: string, source: string): KeyMaterial {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    throw new UserError(`${source} is not a readable PEM private key`, 'give an unencrypted RSA or Ed25519 key in PEM form');
  }
  const material = describeKey(key);
  if (material.algorithm === 'rsa' && material.bits < 1024) {
    throw new UserError(`${source} holds a ${material.bits}-bit RSA key`, 'receivers ignore keys under 1024 bits (RFC 8301): generate a new one');
  }
  return material;
}

export function describeKey(privateKey: KeyObject): KeyMaterial {
  const type = privateKey.asymmetricKeyType;
  if (type !== 'rsa' && type !== 'ed25519') {
    throw new UserError(`unsupported key type ${type}`, 'DKIM keys are RSA (rsa-sha256) or Ed25519 (ed25519-sha256)');
  }
  const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  return {
    algorithm: type,
    bits: type === 'rsa' ? privateKey.asymmetricKeyDetails!.modulusLength! : 256,
    privatePem,
    publicData: publicData(createPublicKey(privateKey)),
  };
}

function publicData(publicKey: KeyObject): string {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  // Ed25519 SPKI is a fixed 12-byte prefix followed by the 32-byte key.
  return (publicKey.asymmetricKeyType === 'ed25519' ? spki.subarray(spki.length - 32) : spki).toString('base64');
}

/** A short, stable name for a public key: SHA256 of the p= bytes, as ssh prints it. */
export function fingerprint(publicData: string): string {
  return 'SHA256:' + trimEndOf(createHash('sha256').update(Buffer.from(publicData, 'base64')).digest('base64'), '=');
}

/** A PEM public key (SPKI) from the p= value, for `keys export`. */
export function publicPem(algorithm: Algorithm, data: string): string {
  const raw = Buffer.from(data, 'base64');
  const der = algorithm === 'ed25519' ? Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw]) : raw;
  return createPublicKey({ key: der, format: 'der', type: 'spki' }).export({ type: 'spki', format: 'pem' }).toString();
}
