// How a token key is named in the store (RFC 7512 URI) and how its public half
// becomes the p= value, checked against keys made in memory.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import { describeKey } from '../../../src/keys/key-material.ts';
import { isTokenUri, parseTokenUri, privateComponents, publicDataOf, tokenUri } from '../../../src/keys/pkcs11-objects.ts';

test('a token key URI names the token label and the CKA_ID, every id octet percent-encoded (RFC 7512 §2.3), and reads back', () => {
  const ref = { token: 'dkim keys;1', id: '00a1ff' };
  const uri = tokenUri(ref);
  assert.equal(uri, 'pkcs11:token=dkim%20keys%3B1;id=%00%a1%ff');
  assert.ok(isTokenUri(uri));
  assert.ok(!isTokenUri('s1._domainkey.example.com.pem'));
  assert.deepEqual(parseTokenUri(uri), ref);
});

test('the p= value of a token key equals the one of the same key in memory: RSA from modulus and exponent, Ed25519 from CKA_EC_POINT in either form', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const rsaParts = privateComponents(describeKey(rsa).privatePem).values;
  assert.equal(publicDataOf('rsa', { modulus: rsaParts.modulus, exponent: rsaParts.publicExponent }), describeKey(rsa).publicData);

  const ed = describeKey(generateKeyPairSync('ed25519').privateKey);
  const raw = Buffer.from(ed.publicData, 'base64');
  assert.equal(publicDataOf('ed25519', { point: Buffer.concat([Buffer.from([0x04, 0x20]), raw]) }), ed.publicData);
  assert.equal(publicDataOf('ed25519', { point: raw }), ed.publicData);
  assert.throws(() => publicDataOf('ed25519', { point: raw.subarray(1) }), /31 octets/);
});

test('a token that cannot be opened is tried again only once TOKEN_RETRY_MS has passed (injected clock), its error saying how to mend it', async () => {
  const { Pkcs11Token, TOKEN_RETRY_MS } = await import('../../../src/keys/pkcs11-token.ts');
  let now = 1_000_000;
  const token = Pkcs11Token.connectLater(
    { module: '/nonexistent/libpkcs11.so', token: 'dkim', pinFile: '/nonexistent/pin', newKeys: false },
    { now: () => now, onChange: (p) => told.push(p?.message ?? null) },
  );
  const told: (string | null)[] = [];
  const ref = { token: 'dkim', id: '01' };
  assert.ok(token.retryDue(), 'a token never opened is due at once');
  assert.deepEqual(token.health(), { token: 'dkim', state: 'unknown', downSince: null, problem: null }, 'not used yet is not a failure');
  assert.throws(
    () => token.signingKey(ref, 'rsa', 2048, 's1._domainkey.example.com'),
    (err: Error & { toLine(): string }) => /module \/nonexistent\/libpkcs11\.so cannot be loaded .* — .*keys\.pkcs11\.module/.test(err.toLine()),
  );
  assert.equal(token.retryDue(), false);
  now += TOKEN_RETRY_MS - 1;
  assert.equal(token.retryDue(), false, 'tried again too soon');
  now += 1;
  assert.equal(token.retryDue(), true);
  const first = 1_000_000;
  assert.equal(token.health().state, 'down');
  assert.equal(token.health().downSince, first);
  assert.match(token.health().problem!, /cannot be loaded .* — /);
  assert.throws(() => token.signingKey(ref, 'rsa', 2048, 's1._domainkey.example.com'));
  assert.equal(token.health().downSince, first, 'down since the first failure of the spell, not the last');
  assert.equal(told.length, 2, 'each failure is told');
  token.close();
});
