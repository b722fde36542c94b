// Links planted in the key store directory are never followed: the file a
// link points to keeps its content and mode, and the store says which path
// is a link.
import assert from 'node:assert/strict';
import { mkdirSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { LinkRefusedError } from '../../src/common/file-create.ts';
import { recordName } from '../../src/common/names.ts';
import { SqliteKeyStore } from '../../src/keys/store.ts';
import { tempDir } from '../helpers/tmp.ts';
import { victim } from '../helpers/victim.ts';

test('keys.db as a link: refused, the target untouched', () => {
  const dir = join(tempDir(), 'keys');
  mkdirSync(dir, { mode: 0o700 });
  const target = victim();
  symlinkSync(target.path, join(dir, 'keys.db'));
  assert.throws(
    () => SqliteKeyStore.open(dir),
    (err: Error) => err instanceof LinkRefusedError && /keys\.db is a symbolic link/.test(err.message),
  );
  target.unchanged();
});

test('a link at the temporary name of a new key file: refused, the target untouched, no key written', () => {
  const dir = join(tempDir(), 'keys');
  const store = SqliteKeyStore.open(dir);
  try {
    const target = victim();
    const file = join(dir, `${recordName('s1', 'example.com')}.pem`);
    symlinkSync(target.path, `${file}.tmp-${process.pid}`);
    assert.throws(
      () => store.generate({ domain: 'example.com', selector: 's1', algorithm: 'ed25519' }),
      /is a symbolic link, which dkim-relay does not write through/,
    );
    target.unchanged();
    assert.equal(store.list().length, 0);
  } finally {
    store.close();
  }
});

test('keys.db and key files are 0600 whatever the umask', () => {
  const dir = join(tempDir(), 'keys');
  const old = process.umask(0o000);
  try {
    const store = SqliteKeyStore.open(dir);
    store.generate({ domain: 'example.com', selector: 's1', algorithm: 'ed25519' });
    store.close();
  } finally {
    process.umask(old);
  }
  assert.equal(statSync(join(dir, 'keys.db')).mode & 0o777, 0o600);
  assert.equal(statSync(join(dir, `${recordName('s1', 'example.com')}.pem`)).mode & 0o777, 0o600);
});
