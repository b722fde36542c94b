// The key operations on a digest are the standard signatures over the data:
// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 §8.2) and Ed25519 over the digest.
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, sign, verify } from 'node:crypto';
import { test } from 'node:test';
import { signDigest, verifyDigest } from '../../src/signing/digest-signature.ts';

const data = Buffer.from('from:a@example.com\r\nsubject:digest\r\ndkim-signature:v=1; b=');
const digest = createHash('sha256').update(data).digest();

test('an RSA signature of the digest is the RSASSA-PKCS1-v1_5 SHA-256 signature of the data, and only it verifies', () => {
  for (const bits of [1024, 2048]) {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
    const signature = signDigest('rsa', digest, privateKey);
    assert.deepEqual(signature, sign('sha256', data, privateKey), `${bits} bits`);
    assert.equal(verify('sha256', data, publicKey, signature), true);
    assert.equal(verifyDigest('rsa', digest, publicKey, signature), true);
    const other = createHash('sha256').update('other').digest();
    assert.equal(verifyDigest('rsa', other, publicKey, signature), false, 'another digest');
    const bent = Buffer.from(signature);
    bent[bent.length - 1]! ^= 1;
    assert.equal(verifyDigest('rsa', digest, publicKey, bent), false, 'a changed signature');
    assert.equal(verifyDigest('ed25519', digest, publicKey, signature), false, 'the wrong algorithm');
  }
});

test('an Ed25519 signature is PureEdDSA over the digest itself', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const signature = signDigest('ed25519', digest, privateKey);
  assert.equal(verify(null, digest, publicKey, signature), true);
  assert.equal(verifyDigest('ed25519', digest, publicKey, signature), true);
  assert.equal(verifyDigest('ed25519', createHash('sha256').update('other').digest(), publicKey, signature), false);
  assert.throws(() => signDigest('rsa', digest, privateKey), /a ed25519 key cannot make a rsa signature/);
  assert.throws(() => signDigest('ed25519', digest.subarray(1), privateKey), /32 octets, got 31/);
});
