// Token keys with the shared PostgreSQL key store: PostgreSQL (a private
// cluster) holds the records and public keys, a SoftHSM token the private
// keys. Keys generated in the token through the CLI, mail relayed by the real
// `serve`, verified by dkimpy and Mail::DKIM; the database never holds a
// private half of them.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { serve } from '../../cli/support.ts';
import { verifyWithDkimpy, verifyWithMailDkim } from '../../helpers/independent-verify.ts';
import { skipWithout } from '../../helpers/tools.ts';
import { postgresOrSkip, startPgCluster, type PgCluster } from '../postgres/pg-cluster.ts';
import { kekFile } from '../postgres/support.ts';
import { MODULE, ok, outbox, PIN, records, relay, setup, stop } from './support.ts';

const withoutPostgres = postgresOrSkip().skip;

describe('token keys in a shared PostgreSQL key store', { skip: withoutPostgres ?? skipWithout('softhsm2-util', 'dkimpy', 'Mail::DKIM') }, () => {
  let cluster: PgCluster;
  before(async () => {
    cluster = await startPgCluster();
  });
  after(async () => {
    await cluster?.stop();
  });

  test('keys generated in the token sign relayed mail that verifies; the rows hold URIs and public keys only; keys remove destroys the objects', async () => {
    const s = setup();
    const url = await cluster.createDatabase('hsm');
    const kek = kekFile(s.dir);
    writeFileSync(s.config, readFileSync(s.config, 'utf8').replace('keys: {dir: ', `keys: {database: "${url}", encryptionKeyFile: ${kek}, dir: `));
    await ok(s, ['config', 'check']);
    await ok(s, ['keys', 'generate', '--domain', 'example.com', '--selector', 'pgrsa', '--in-token', '--activate']);
    await ok(s, ['keys', 'generate', '--domain', 'example.com', '--selector', 'pged', '--algorithm', 'ed25519', '--in-token', '--activate']);
    const list = await ok(s, ['keys', 'list']);
    assert.match(list, /pgrsa\s+rsa\s+2048\s+active\s+pkcs11/);
    assert.match(list, /pged\s+ed25519\s+256\s+active\s+pkcs11/);
    const rows = (await cluster.psql('hsm', `SELECT selector, material, sealed IS NULL, file FROM keys ORDER BY selector`)).trim().split('\n');
    assert.equal(rows.length, 2);
    for (const row of rows) assert.match(row, /^pg(rsa|ed)\|pkcs11\|t\|pkcs11:token=dkim;id=(%[0-9a-f]{2}){16}$/);
    assert.ok(!(await cluster.dump('hsm')).includes('PRIVATE KEY'));

    const running = await serve(['--config', s.config], s.dir, { env: s.env });
    try {
      const reply = await relay(running.port());
      assert.ok(reply.ok, reply.response);
    } finally {
      await stop(running);
    }
    const [signed] = outbox(s);
    assert.ok(signed, 'nothing delivered');
    const txt = await records(s);
    assert.deepEqual(await verifyWithDkimpy(signed, txt), [true, true]);
    assert.equal((await verifyWithMailDkim(signed, txt)).filter((r) => r === 'pass').length, 1, 'Mail::DKIM verifies the RSA signature');

    await ok(s, ['keys', 'generate', '--domain', 'example.com', '--selector', 'gone', '--in-token']);
    const objects = () =>
      execFileSync('pkcs11-tool', ['--module', MODULE, '--token-label', 'dkim', '--login', '--pin', PIN, '-O'], {
        env: { ...process.env, ...s.env },
        encoding: 'utf8',
      });
    assert.ok(objects().includes('dkim gone._domainkey.example.com'));
    assert.match(await ok(s, ['keys', 'remove', '--domain', 'example.com', '--selector', 'gone']), /key objects in the token are destroyed/);
    assert.ok(!objects().includes('gone._domainkey'), objects());
    assert.ok(objects().includes('pgrsa._domainkey'));
  });

  test('keys migrate copies a SQLite store with a token key: the row and its URI move, the key stays in the token and signs', async () => {
    const s = setup();
    await ok(s, ['keys', 'generate', '--domain', 'example.com', '--selector', 'moved', '--in-token', '--activate']);
    const url = await cluster.createDatabase('migrated');
    const kek = kekFile(s.dir);
    assert.match(await ok(s, ['keys', 'migrate', '--to', url, '--encryption-key-file', kek]), /keys: 1 \(1 new, 0 already there\)/);
    assert.match((await cluster.psql('migrated', `SELECT material, sealed IS NULL, file FROM keys`)).trim(), /^pkcs11\|t\|pkcs11:token=dkim;id=/);
    writeFileSync(s.config, readFileSync(s.config, 'utf8').replace('keys: {dir: ', `keys: {database: "${url}", encryptionKeyFile: ${kek}, dir: `));
    const running = await serve(['--config', s.config], s.dir, { env: s.env });
    try {
      const reply = await relay(running.port());
      assert.ok(reply.ok, reply.response);
    } finally {
      await stop(running);
    }
    assert.deepEqual(await verifyWithDkimpy(outbox(s)[0]!, await records(s)), [true]);
  });
});
