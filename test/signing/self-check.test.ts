// The self-check must catch a broken signer: these tests make signatures as
// a signer with a header-hash bug or a body-hash bug would, and expect the
// self-check to refuse them. It must not share code with the signer, or one
// bug could vouch for itself.
import assert from 'node:assert/strict';
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { parseHeader, splitMessage } from '../../src/message/header.ts';
import { selfCheck } from '../../src/pipeline/self-check.ts';
import { SqliteKeyStore, type ActiveKey } from '../../src/keys/store.ts';
import type { KeyStore } from '../../src/keys/key-store.ts';
import { BodyHasher } from '../../src/signing/body-hash.ts';
import { headerBlockLength } from '../../src/message/incoming.ts';
import { fileOctets } from '../../src/message/octets.ts';
import { CryptoPool, inThreadCrypto, type DigestCrypto } from '../../src/signing/crypto-pool.ts';
import { signHashed, signMessageAsync, type SignOptions } from '../../src/signing/signer.ts';
import { tempDir } from '../helpers/relay-harness.ts';

const OPTIONS: SignOptions = {
  headerCanonicalization: 'relaxed',
  bodyCanonicalization: 'relaxed',
  headers: ['From', 'To', 'Subject', 'Date'],
  oversign: ['From'],
};
const MESSAGE = Buffer.from(
  'From: Payroll <payroll@example.com>\r\nTo: alice@example.net\r\nSubject:  Payslip   for\r\n\tMarch\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n\r\n' +
    'Dear Alice,  \r\n\r\nyour payslip\t is attached.\r\n\r\n\r\n',
);

function withStore(fn: (store: KeyStore, keys: ActiveKey[]) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = tempDir();
    const store = SqliteKeyStore.open(dir.path);
    try {
      store.generate({ domain: 'example.com', algorithm: 'rsa', activate: true });
      store.generate({ domain: 'example.com', algorithm: 'ed25519', activate: true });
      await fn(store, store.activeKeys('example.com'));
    } finally {
      store.close();
      dir.remove();
    }
  };
}

const prepend = (fields: string, message: Buffer) => Buffer.concat([Buffer.from(fields, 'latin1'), message]);

function hashed(message: Buffer) {
  const { header, body } = splitMessage(message);
  const hasher = new BodyHasher('relaxed').update(body);
  return { fields: parseHeader(header), bodyHash: hasher.digest(), bodyLength: hasher.canonicalLength };
}

describe('self-check', () => {
  test(
    'a correct signature passes, RSA and Ed25519, with the verification in the crypto pool',
    withStore(async (store, keys) => {
      const pool = new CryptoPool({ size: 2 });
      try {
        const signed = prepend(await signMessageAsync(MESSAGE, keys, OPTIONS, { crypto: pool }), MESSAGE);
        const check = await selfCheck(signed, keys, store, 'relaxed', pool);
        assert.equal(check.pass, true, check.detail);
        assert.equal(check.detail.match(/pass/g)?.length, 2);
      } finally {
        await pool.close();
      }
    }),
  );

  // Each failure is caught with the key operation in this thread (the CLI, a pool that
  // fell back) and in the crypto pool's thread (the daemon).
  for (const where of ['in this thread', 'with the crypto pool'] as const) {
    describe(where, () => {
      let pool: CryptoPool | undefined;
      const crypto = (): DigestCrypto => (where === 'in this thread' ? inThreadCrypto : (pool ??= new CryptoPool({ size: 1 })));
      after(() => pool?.close());

      test(
        'a signer that hashes the wrong header bytes: the self-check fails with a bad signature',
        withStore(async (store, keys) => {
          // The header the signer hashed differs from the one sent (as a wrong header
          // canonicalization makes it): here, the Subject as the signer saw it.
          const seen = hashed(Buffer.from(MESSAGE.toString('latin1').replace('Payslip   for', 'Payslip for you'), 'latin1'));
          const signed = prepend(await signHashed({ ...seen, bodyHash: hashed(MESSAGE).bodyHash }, keys, OPTIONS, inThreadCrypto), MESSAGE);
          const check = await selfCheck(signed, keys, store, 'relaxed', crypto());
          assert.equal(check.pass, false);
          assert.match(check.detail, /s=\w+: fail \(the signature does not verify[^)]*\).*s=\w+: fail \(the signature does not verify/);
        }),
      );

      test(
        'a signer with a wrong body hash: the self-check fails on the body hash',
        withStore(async (store, keys) => {
          // bh= of the body with "simple" canonicalization while c= says relaxed: a body-hash bug.
          const wrong = new BodyHasher('simple').update(splitMessage(MESSAGE).body).digest();
          assert.notEqual(wrong, hashed(MESSAGE).bodyHash);
          const signed = prepend(await signHashed({ ...hashed(MESSAGE), bodyHash: wrong }, keys, OPTIONS, inThreadCrypto), MESSAGE);
          const check = await selfCheck(signed, keys, store, 'relaxed', crypto());
          assert.equal(check.pass, false);
          assert.match(check.detail, /fail \(the body hash does not match/);
        }),
      );

      test(
        'a body changed after signing fails, however large (hashed in slices)',
        withStore(async (store, keys) => {
          const big = Buffer.concat([MESSAGE, Buffer.alloc(3 * 1024 * 1024, 'y\r\n')]);
          const signed = prepend(await signMessageAsync(big, keys, OPTIONS, { crypto: inThreadCrypto }), big);
          assert.equal((await selfCheck(signed, keys, store, 'relaxed', crypto())).pass, true);
          signed[signed.length - 100] = 0x7a;
          const check = await selfCheck(signed, keys, store, 'relaxed', crypto());
          assert.equal(check.pass, false);
          assert.match(check.detail, /the body hash does not match/);
        }),
      );

      test(
        'a body in a file passes, and fails once the file is changed',
        withStore(async (store, keys) => {
          const big = Buffer.concat([MESSAGE, Buffer.alloc(200 * 1024, 'z\r\n')]);
          const fields = Buffer.from(await signMessageAsync(big, keys, OPTIONS, { crypto: inThreadCrypto }), 'latin1');
          const headerLength = headerBlockLength(big);
          const dir = tempDir();
          try {
            // The body somewhere inside a larger file, as a spooled message's is.
            const file = join(dir.path, 'message');
            writeFileSync(file, Buffer.concat([Buffer.from('preamble\r\n'), big, Buffer.from('trailer')]));
            const signed = {
              header: Buffer.concat([fields, big.subarray(0, headerLength)]),
              body: fileOctets(file, 10 + headerLength, big.length - headerLength),
            };
            assert.equal((await selfCheck(signed, keys, store, 'relaxed', crypto())).pass, true);
            const fd = openSync(file, 'r+');
            writeSync(fd, 'Z', 10 + big.length - 50);
            closeSync(fd);
            const check = await selfCheck(signed, keys, store, 'relaxed', crypto());
            assert.equal(check.pass, false);
            assert.match(check.detail, /the body hash does not match/);
          } finally {
            dir.remove();
          }
        }),
      );

      test(
        'a d= that does not align with From: under strict alignment fails',
        withStore(async (store, keys) => {
          const sub = Buffer.from(MESSAGE.toString('latin1').replace('payroll@example.com', 'payroll@mail.example.com'), 'latin1');
          const signed = prepend(await signMessageAsync(sub, keys, OPTIONS, { crypto: inThreadCrypto }), sub);
          assert.equal((await selfCheck(signed, keys, store, 'relaxed', crypto())).pass, true);
          const check = await selfCheck(signed, keys, store, 'strict', crypto());
          assert.equal(check.pass, false);
          assert.match(check.detail, /not aligned with From: mail\.example\.com \(strict\)/);
        }),
      );

      test(
        'a key revoked or removed, by the relay or by another process, is seen by the next check',
        withStore(async (store, keys) => {
          const signed = prepend(await signMessageAsync(MESSAGE, keys, OPTIONS, { crypto: inThreadCrypto }), MESSAGE);
          const [rsa, ed] = keys as [ActiveKey, ActiveKey];
          assert.equal((await selfCheck(signed, keys, store, 'relaxed', crypto())).pass, true);
          // Another connection (the CLI): seen through SQLite's data_version.
          const cli = SqliteKeyStore.open(store.location);
          try {
            cli.retire(rsa.domain, rsa.selector);
            cli.revoke(rsa.domain, rsa.selector);
          } finally {
            cli.close();
          }
          const revoked = await selfCheck(signed, keys, store, 'relaxed', crypto());
          assert.equal(revoked.pass, false);
          assert.match(revoked.detail, new RegExp(`s=${rsa.selector}: `));
          assert.doesNotMatch(revoked.detail, new RegExp(`s=${ed.selector}: `));
          // This connection's own change.
          store.retire(ed.domain, ed.selector);
          store.revoke(ed.domain, ed.selector);
          store.remove(ed.domain, ed.selector);
          const removed = await selfCheck(signed, keys, store, 'relaxed', crypto());
          assert.match(removed.detail, new RegExp(`s=${ed.selector}: permerror \\(no key record`));
        }),
      );
    });
  }

  test('the verifier shares no code with the signer', () => {
    const source = readFileSync(new URL('../../src/signing/verify-bounded.ts', import.meta.url), 'utf8');
    // octets.ts only carries the octets (no parsing, no canonicalization): reading the same file is not sharing a reading of it.
    const imports = [...source.matchAll(/from '([^']+)'/g)].map((m) => m[1]).filter((i) => i !== '../message/octets.ts');
    for (const own of ['./canonicalization', './body-hash', './signer', './header-selection', './signature-header', '../message/']) {
      assert.ok(!imports.some((i) => i!.startsWith(own)), `verify-bounded.ts imports ${own}`);
    }
  });
});
