// The key store while the relay runs: one domain's broken key file holds back
// that domain alone, each problem is told once, a key file opened to others
// is refused at the next load, and the store directory is tightened only when
// that is safe.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KeyObject } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KeyFileError } from '../../src/keys/key-file.ts';
import { SqliteKeyStore, type KeyProblem, type StoreOptions } from '../../src/keys/store.ts';
import type { KeyStore } from '../../src/keys/key-store.ts';
import { tempDir } from '../helpers/tmp.ts';
import { expectUserError, PRIVATE_ARMOUR } from './support.ts';

function octal(path: string): string {
  return (statSync(path).mode & 0o777).toString(8).padStart(4, '0');
}

/** A store with an active Ed25519 key for each domain, reopened as the daemon would open it. */
function storeWith(domains: string[], options: StoreOptions = {}): { dir: string; store: KeyStore; problems: KeyProblem[]; file(domain: string): string } {
  const dir = join(tempDir(), 'keys');
  const writer = SqliteKeyStore.open(dir);
  const files = new Map(domains.map((d) => [d, join(dir, writer.generate({ domain: d, selector: 's1', algorithm: 'ed25519', activate: true }).file)]));
  writer.close();
  const problems: KeyProblem[] = [];
  const store = SqliteKeyStore.open(dir, { ...options, onKeyProblem: (p) => problems.push(p) });
  return { dir, store, problems, file: (d) => files.get(d)! };
}

/** Any change to the database from another connection, as `keys generate` from the CLI makes. */
function touchDatabase(dir: string, selector: string): void {
  const cli = SqliteKeyStore.open(dir);
  cli.generate({ domain: 'elsewhere.example', selector, algorithm: 'ed25519' });
  cli.close();
}

const BREAKAGES: { problem: string; message: RegExp; hint: RegExp; break(file: string, dir: string): void }[] = [
  { problem: 'missing', message: /is missing/, hint: /restore it from backup/, break: (f) => rmSync(f) },
  {
    problem: 'not a file',
    message: /is not a regular file/,
    hint: /restore it from backup/,
    break: (f) => {
      rmSync(f);
      mkdirSync(f, { mode: 0o700 });
    },
  },
  {
    problem: 'damaged',
    message: /is not a readable PEM private key/,
    hint: /restore it from backup/,
    break: (f) => writeFileSync(f, `-----BEGIN ${PRIVATE_ARMOUR}-----\nTm90IGEga2V5\n-----END ${PRIVATE_ARMOUR}-----\n`, { mode: 0o600 }),
  },
  {
    problem: 'symlink',
    message: /is a symbolic link/,
    hint: /cp --remove-destination/,
    break: (f, dir) => {
      // A link to a perfectly good copy of the key is refused all the same.
      const copy = join(dir, '..', 'copy.pem');
      writeFileSync(copy, readFileSync(f), { mode: 0o600 });
      rmSync(f);
      symlinkSync(copy, f);
    },
  },
  { problem: 'readable by others', message: /readable by others \(mode 0644\)/, hint: /chmod 600/, break: (f) => chmodSync(f, 0o644) },
];

for (const breakage of BREAKAGES) {
  test(`a key file that is ${breakage.problem}: only its domain waits, the problem is told once, with the file and the mend`, () => {
    const { dir, store, problems, file } = storeWith(['good.example', 'bad.example']);
    assert.equal(store.activeKeys('bad.example').length, 1, 'the key works before it is broken');
    breakage.break(file('bad.example'), dir);
    touchDatabase(dir, 'n1'); // the running relay reloads its active keys after a change

    const err = expectUserError(() => store.activeKeys('bad.example'), breakage.message, breakage.hint);
    assert.ok(err instanceof KeyFileError);
    assert.equal(err.problem, breakage.problem);
    assert.ok(err.message.includes(file('bad.example')), `the error does not name the file: ${err.message}`);
    assert.equal(store.signingDomainFor('mail.bad.example'), 'bad.example', 'a broken key must not hand its mail to another domain');
    assert.deepEqual(
      store.activeKeys('good.example').map((k) => k.domain),
      ['good.example'],
      'another domain stopped signing',
    );

    // Many messages and another reload later, still told once.
    for (let i = 0; i < 5; i++) assert.throws(() => store.activeKeys('bad.example'), KeyFileError);
    touchDatabase(dir, 'n2');
    assert.throws(() => store.activeKeys('bad.example'), KeyFileError);
    assert.equal(problems.length, 1, `told ${problems.length} times: ${problems.map((p) => p.line).join('\n')}`);
    assert.deepEqual({ ...problems[0], line: undefined }, { domain: 'bad.example', selector: 's1', problem: breakage.problem, line: undefined });
    assert.equal(problems[0]!.line, err.toLine());
    assert.ok(!problems[0]!.line.includes('Tm90IGEga2V5'), 'the problem echoes the file content');
    store.close();
  });
}

test('a key mended and broken again is told again; a mended key signs at the next load', () => {
  const { dir, store, problems, file } = storeWith(['example.com']);
  chmodSync(file('example.com'), 0o640);
  touchDatabase(dir, 'n1');
  assert.throws(() => store.activeKeys('example.com'), KeyFileError);
  chmodSync(file('example.com'), 0o600);
  touchDatabase(dir, 'n2');
  assert.equal(store.activeKeys('example.com').length, 1);
  chmodSync(file('example.com'), 0o604);
  touchDatabase(dir, 'n3');
  assert.throws(() => store.activeKeys('example.com'), KeyFileError);
  assert.deepEqual(
    problems.map((p) => p.problem),
    ['readable by others', 'readable by others'],
  );
  store.close();
});

test('with no change in the database, key files are checked again once recheckMs has passed', () => {
  let now = 1_000_000;
  const { store, problems, file } = storeWith(['example.com', 'example.org'], { recheckMs: 30_000, now: () => now });
  assert.equal(store.activeKeys('example.com').length, 1);
  chmodSync(file('example.com'), 0o644);
  now += 29_000;
  assert.equal(store.activeKeys('example.com').length, 1, 'the files are not re-checked per message');
  now += 1_000;
  expectUserError(() => store.activeKeys('example.com'), /readable by others/, /chmod 600/);
  assert.equal(store.activeKeys('example.org').length, 1);
  assert.equal(problems.length, 1);

  chmodSync(file('example.com'), 0o600);
  now += 30_000;
  assert.equal(store.activeKeys('example.com').length, 1, 'a mended key does not sign again at the next check');
  store.close();
});

test('a key file replaced by another key while the relay runs is read again at the next load', () => {
  let now = 0;
  const { dir, store, file } = storeWith(['example.com'], { now: () => now });
  const before = store.activeKeys('example.com')[0]!.privateKey;
  const other = SqliteKeyStore.open(join(tempDir(), 'keys'));
  const replacement = readFileSync(join(other.dir, other.generate({ domain: 'example.com', selector: 's1', algorithm: 'ed25519' }).file));
  other.close();
  writeFileSync(file('example.com'), replacement);
  now += 60_000;
  const after = store.activeKeys('example.com')[0]!.privateKey;
  assert.ok(!(after as KeyObject).equals(before as KeyObject), 'the old key is still cached');
  assert.ok(dir);
  store.close();
});

test('start-up (checkActiveKeys): a key others can read stops it; a missing key is told and holds back its domain alone', () => {
  const open = storeWith(['example.com', 'example.org']);
  chmodSync(open.file('example.org'), 0o644);
  expectUserError(() => open.store.checkActiveKeys(), /readable by others/, /chmod 600/);
  open.store.close();

  const missing = storeWith(['example.com', 'example.org']);
  rmSync(missing.file('example.org'));
  assert.deepEqual(
    missing.store.checkActiveKeys().map((k) => k.domain),
    ['example.com'],
  );
  assert.deepEqual(
    missing.problems.map((p) => [p.domain, p.problem]),
    [['example.org', 'missing']],
  );
  assert.equal(missing.store.activeKeys('example.com').length, 1);
  assert.equal(missing.problems.length, 1, 'the problem found at start-up was told again at the first message');
  missing.store.close();
});

test('keys export --private refuses a key file that is a symbolic link', () => {
  const { dir, store, file } = storeWith(['example.com']);
  BREAKAGES.find((b) => b.problem === 'symlink')!.break(file('example.com'), dir);
  expectUserError(() => store.privatePem(store.get('example.com', 's1')), /symbolic link/, /cp --remove-destination/);
  store.close();
});

test('an empty store directory open to others is tightened quietly; one holding keys is reported', () => {
  const base = tempDir();
  const fresh = join(base, 'fresh');
  mkdirSync(fresh, { mode: 0o755 });
  chmodSync(fresh, 0o755);
  writeFileSync(join(fresh, '.gitignore'), '*\n!.gitignore\n'); // as a fresh checkout's keys/
  const a = SqliteKeyStore.open(fresh);
  assert.equal(octal(fresh), '0700');
  assert.equal(a.tightenedDir, true);
  assert.equal(a.exposedKeyFiles, 0);
  a.generate({ domain: 'example.com', algorithm: 'ed25519' });
  a.close();

  chmodSync(fresh, 0o750);
  const b = SqliteKeyStore.open(fresh);
  assert.equal(octal(fresh), '0700');
  assert.equal(b.exposedKeyFiles, 1);
  b.close();
});

test('a keys.dir that is a symbolic link to a directory others can read is refused and left unchanged', () => {
  const base = tempDir();
  const shared = join(base, 'shared');
  mkdirSync(shared);
  chmodSync(shared, 0o1777); // as /tmp
  const link = join(base, 'keys');
  symlinkSync(shared, link);
  const err = expectUserError(() => SqliteKeyStore.open(link), /symbolic link to \S*shared, which others can read/, /chmod 700/);
  assert.match(err.toLine(), new RegExp(`chmod 700 ${shared.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  assert.equal((statSync(shared).mode & 0o7777).toString(8), '1777', 'the link target was chmodded');

  // A link to a private directory is used as it is.
  const own = join(base, 'own');
  mkdirSync(own, { mode: 0o700 });
  const ownLink = join(base, 'own-link');
  symlinkSync(own, ownLink);
  const store = SqliteKeyStore.open(ownLink);
  store.generate({ domain: 'example.com', selector: 'l1', algorithm: 'ed25519', activate: true });
  assert.equal(store.activeKeys('example.com').length, 1);
  store.close();
  assert.equal(octal(own), '0700');

  const dangling = join(base, 'dangling');
  symlinkSync(join(base, 'nowhere'), dangling);
  expectUserError(() => SqliteKeyStore.open(dangling), /leads nowhere/);
});
