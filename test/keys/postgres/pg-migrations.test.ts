// The PostgreSQL key store's schema: migrated once, under an advisory lock,
// however many relays open a fresh database at the same moment; a database a
// newer release migrated further is refused in one line.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { UserError } from '../../../src/common/errors.ts';
import { PgKeyStore } from '../../../src/keys/pg-store.ts';
import { PG_LATEST_VERSION } from '../../../src/keys/pg-schema.ts';
import { readEncryptionKey } from '../../../src/keys/sealing.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { postgresOrSkip, startPgCluster, type PgCluster } from './pg-cluster.ts';
import { kekFile } from './support.ts';

const pgSkip = postgresOrSkip();

describe('PostgreSQL key store schema', { skip: pgSkip.skip }, () => {
  let cluster: PgCluster;
  before(async () => {
    cluster = await startPgCluster();
  });
  after(async () => {
    await cluster?.stop();
  });

  /** The fleet shares one key-encryption key; each relay has its own keys.dir. */
  const encryptionKey = () => readEncryptionKey(kekFile(tempDir()));
  const options = (url: string, kek: Buffer) => ({ url, dir: join(tempDir(), 'keys'), encryptionKey: kek, refreshMs: 0 });

  test('eight relays opening one fresh database at once: each opens it, the schema is made once', async () => {
    const url = await cluster.createDatabase('eight');
    const kek = encryptionKey();
    const stores = await Promise.all(Array.from({ length: 8 }, () => PgKeyStore.open(options(url, kek))));
    try {
      assert.equal((await cluster.psql('eight', `SELECT name, version FROM schema_versions`)).trim(), `keys|${PG_LATEST_VERSION}`);
      await stores[0]!.generate({ domain: 'example.com', algorithm: 'ed25519', activate: true });
      await stores[7]!.refresh();
      assert.equal(stores[7]!.activeKeys('example.com').length, 1);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  test('a schema newer than this release knows is refused in one line', async () => {
    const url = await cluster.createDatabase('newer');
    const kek = encryptionKey();
    await (await PgKeyStore.open(options(url, kek))).close();
    await cluster.psql('newer', `UPDATE schema_versions SET version = 99 WHERE name = 'keys'`);
    await assert.rejects(
      PgKeyStore.open(options(url, kek)),
      (err: unknown) => err instanceof UserError && /has schema version 99, but this dkim-relay knows versions up to 3/.test(err.message),
    );
  });
});
