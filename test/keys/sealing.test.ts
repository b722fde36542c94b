// Sealing private keys for a shared database: AES-256-GCM, a fresh nonce per
// seal, the key's id bound in as associated data; the key-encryption key file
// refused unless it is 32 bytes of base64 that only its owner can read.
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmodSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readEncryptionKey, SealError, seal, unseal } from '../../src/keys/sealing.ts';
import { tempDir } from '../helpers/tmp.ts';
import { expectUserError, PRIVATE_ARMOUR } from './support.ts';

const pem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

test('a sealed key opens with its key-encryption key and id only, and never shows the PEM', () => {
  const kek = randomBytes(32);
  const sealed = seal(kek, 7, pem);
  assert.equal(unseal(kek, 7, sealed), pem);
  assert.ok(!sealed.includes(Buffer.from(PRIVATE_ARMOUR)) && !sealed.includes(Buffer.from(pem.slice(40, 80))));
  assert.throws(() => unseal(randomBytes(32), 7, sealed), SealError, 'another key-encryption key');
  assert.throws(() => unseal(kek, 8, sealed), SealError, 'the sealed key moved onto another row');
  const altered = Buffer.from(sealed);
  altered[altered.length - 1]! ^= 1;
  assert.throws(() => unseal(kek, 7, altered), SealError, 'an altered ciphertext');
});

test('every seal takes a fresh nonce: the same key sealed twice differs', () => {
  const kek = randomBytes(32);
  const a = seal(kek, 1, pem);
  const b = seal(kek, 1, pem);
  assert.notDeepEqual(a.subarray(1, 13), b.subarray(1, 13));
  assert.notDeepEqual(a, b);
});

test('keys.encryptionKeyFile: 32 bytes in base64, mode 0600, else one line saying how to mend it', () => {
  const dir = tempDir();
  const file = join(dir, 'kek');
  writeFileSync(file, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  assert.equal(readEncryptionKey(file).length, 32);
  chmodSync(file, 0o644);
  expectUserError(() => readEncryptionKey(file), /keys\.encryptionKeyFile .* is readable by others \(mode 0644\)/, /chmod 600/);
  const short = join(dir, 'short');
  writeFileSync(short, `${randomBytes(16).toString('base64')}\n`, { mode: 0o600 });
  expectUserError(() => readEncryptionKey(short), /does not hold 32 bytes in base64/, /openssl rand -base64 32/);
  const link = join(dir, 'link');
  symlinkSync(short, link);
  expectUserError(() => readEncryptionKey(link), /is a symbolic link/);
  expectUserError(() => readEncryptionKey(join(dir, 'none')), /does not exist/);
});
