// rotation.revealPrivateKeys writes into a directory others may control (a
// web server's): a link planted there, at the temporary name the relay used
// to write through or at the final name, is never followed.
import assert from 'node:assert/strict';
import { lstatSync, readdirSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { recordName } from '../../src/common/names.ts';
import type { StoredKey } from '../../src/keys/store.ts';
import { revealPrivateKey } from '../../src/rotation/reveal.ts';
import { tempDir } from '../helpers/tmp.ts';
import { victim } from '../helpers/victim.ts';

const KEY = { domain: 'example.com', selector: 'old', state: 'revoked' } as StoredKey;
const PEM = '-----BEGIN PRIVATE KEY-----\nrevealed\n-----END PRIVATE KEY-----\n';

test('a link at the old temporary name is not written through; the key is published 0644', () => {
  const dir = tempDir('reveal-');
  const target = victim("the relay user's own\n");
  const file = join(dir, `${recordName(KEY.selector, KEY.domain)}.pem`);
  symlinkSync(target.path, `${file}.tmp-${process.pid}`);
  const old = process.umask(0o077);
  try {
    assert.equal(
      revealPrivateKey(dir, KEY, () => PEM),
      file,
    );
  } finally {
    process.umask(old);
  }
  target.unchanged();
  assert.equal(readFileSync(file, 'utf8'), PEM);
  assert.equal(statSync(file).mode & 0o777, 0o644, 'published on purpose, whatever the umask');
  assert.deepEqual(
    readdirSync(dir).sort(),
    [`${recordName(KEY.selector, KEY.domain)}.pem`, `${recordName(KEY.selector, KEY.domain)}.pem.tmp-${process.pid}`].sort(),
    'no temporary file left',
  );
});

test('a link at the final name is replaced by the key, not followed', () => {
  const dir = tempDir('reveal-');
  const target = victim("the relay user's own\n");
  const file = join(dir, `${recordName(KEY.selector, KEY.domain)}.pem`);
  symlinkSync(target.path, file);
  assert.equal(
    revealPrivateKey(dir, KEY, () => PEM),
    file,
  );
  target.unchanged();
  assert.ok(lstatSync(file).isFile(), 'a file of its own now');
  assert.equal(readFileSync(file, 'utf8'), PEM);
  assert.equal(
    revealPrivateKey(dir, KEY, () => 'never read'),
    null,
    'once published, left as it is',
  );
});
