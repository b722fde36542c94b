// A removed token key's objects are destroyed once; after that, no sweep of
// either key store engine asks the token about that key again (counted on the
// token itself), and the audit trail says when its objects went.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { KeyStore } from '../../../src/keys/key-store.ts';
import type { TokenObjectRef } from '../../../src/keys/pkcs11-objects.ts';
import { Pkcs11Token } from '../../../src/keys/pkcs11-token.ts';
import { PgKeyStore } from '../../../src/keys/pg-store.ts';
import { readEncryptionKey } from '../../../src/keys/sealing.ts';
import { SqliteKeyStore } from '../../../src/keys/store.ts';
import { TOKEN_OBJECTS_GONE } from '../../../src/keys/store-rules.ts';
import { skipWithout } from '../../helpers/tools.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { postgresOrSkip, startPgCluster, type PgCluster } from '../postgres/pg-cluster.ts';
import { kekFile } from '../postgres/support.ts';
import { MODULE, setup, type Setup } from './support.ts';

/** The token of `s`, with every lookup of a key's objects (destroy) counted. */
function countedToken(s: Setup): { token: Pkcs11Token; asked: () => number } {
  process.env.SOFTHSM2_CONF = s.env.SOFTHSM2_CONF;
  const token = Pkcs11Token.connectLater({ module: MODULE, token: 'dkim', pinFile: s.pinFile, newKeys: false });
  let asked = 0;
  const destroy = token.destroy.bind(token);
  token.destroy = (ref: TokenObjectRef) => {
    asked++;
    return destroy(ref);
  };
  return { token, asked: () => asked };
}

/** A token key generated, revoked and removed. */
async function removeThenSweep(store: KeyStore): Promise<void> {
  await store.generate({ domain: 'example.com', selector: 'gone', algorithm: 'ed25519', inToken: true });
  await store.revoke('example.com', 'gone');
  await store.remove('example.com', 'gone');
}

const gone = (store: KeyStore) => store.history('example.com').filter((e) => e.selector === 'gone' && e.why === TOKEN_OBJECTS_GONE);

describe('removed token keys are not looked up again', { skip: skipWithout('softhsm2-util') }, () => {
  test('SQLite store: removal destroys the objects once; later sweeps, in this process or another, leave the token alone', async () => {
    const s = setup();
    const first = countedToken(s);
    const store = SqliteKeyStore.open(join(s.dir, 'keys'), { token: first.token });
    try {
      await removeThenSweep(store);
      assert.equal(first.asked(), 1, 'keys remove destroys the objects');
      for (let i = 0; i < 3; i++) assert.deepEqual(store.deleteRemovedFiles(), []);
      assert.equal(first.asked(), 1, 'a sweep asked the token about a key whose objects are gone');
      assert.equal(gone(store).length, 1, 'the audit trail says when its objects went');
      assert.equal(gone(store)[0]!.by, 'cli');
    } finally {
      store.close();
    }
    // Another process (the daemon, a later CLI run) reads that from the store.
    const second = countedToken(s);
    const again = SqliteKeyStore.open(join(s.dir, 'keys'), { token: second.token });
    try {
      assert.deepEqual(again.deleteRemovedFiles(), []);
      assert.equal(second.asked(), 0);
    } finally {
      again.close();
    }
  });

  describe('PostgreSQL store', { skip: postgresOrSkip().skip }, () => {
    let cluster: PgCluster;
    before(async () => {
      cluster = await startPgCluster();
    });
    after(async () => {
      await cluster?.stop();
    });

    test('removal destroys the objects once; later sweeps of this relay or another leave the token alone', async () => {
      const s = setup();
      const url = await cluster.createDatabase('sweep');
      const kek = readEncryptionKey(kekFile(tempDir()));
      const open = (token: Pkcs11Token) => PgKeyStore.open({ url, dir: join(tempDir(), 'keys'), encryptionKey: kek, refreshMs: 0, token });
      const first = countedToken(s);
      const store = await open(first.token);
      try {
        await removeThenSweep(store);
        assert.equal(first.asked(), 1, 'keys remove destroys the objects');
        for (let i = 0; i < 3; i++) assert.deepEqual(store.deleteRemovedFiles(), []);
        assert.equal(first.asked(), 1, 'a sweep asked the token about a key whose objects are gone');
        assert.equal(gone(store).length, 1, 'the audit trail says when its objects went');
      } finally {
        await store.close();
      }
      const second = countedToken(s);
      const other = await open(second.token);
      try {
        assert.deepEqual(other.deleteRemovedFiles(), []);
        assert.equal(second.asked(), 0, "another relay's sweep asked the token again");
      } finally {
        await other.close();
      }
    });
  });
});
