// The key store against real SQLite files, real key files and real keys.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteKeyStore, type StoredKey } from '../../src/keys/store.ts';
import { txtRecord } from '../../src/keys/record.ts';
import { tempDir } from '../helpers/tmp.ts';
import { expectUserError, PRIVATE_ARMOUR } from './support.ts';

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

const opened: SqliteKeyStore[] = [];
after(() => {
  for (const store of opened) {
    try {
      store.close();
    } catch {
      // already closed
    }
  }
});

function openStore(dir = join(tempDir(), 'keys'), options?: { timeoutMs?: number }): SqliteKeyStore {
  const store = SqliteKeyStore.open(dir, options);
  opened.push(store);
  return store;
}

function modeOf(path: string): number {
  return statSync(path).mode & 0o777;
}

function octal(mode: number): string {
  return mode.toString(8).padStart(4, '0');
}

function escapeRegExp(text: string): RegExp {
  return new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
}

/** s + year + month, as the default selectors start. */
function stem(now = new Date()): string {
  return `s${now.getUTCFullYear()}${String(now.getUTCMonth() + 1).padStart(2, '0')}`;
}

/** The public key a stored p= stands for. */
function publishedKey(key: StoredKey): KeyObject {
  const raw = Buffer.from(key.publicData, 'base64');
  const der = key.algorithm === 'ed25519' ? Buffer.concat([ED25519_SPKI_PREFIX, raw]) : raw;
  return createPublicKey({ key: der, format: 'der', type: 'spki' });
}

/** Signs with `privateKey` and checks the signature against the key's published p=. */
function signsFor(privateKey: KeyObject, key: StoredKey): boolean {
  const data = Buffer.from(`${key.selector}._domainkey.${key.domain}`);
  const digest = key.algorithm === 'rsa' ? 'sha256' : null;
  return verify(digest, data, publishedKey(key), sign(digest, data, privateKey));
}

function pemFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => !f.startsWith('keys.db'))
    .sort();
}

test('generates RSA 1024, RSA 2048 and Ed25519 keys: PKCS#8 files whose public half is the stored p=', () => {
  const store = openStore();
  const cases = [
    { algorithm: 'rsa', bits: 1024, selector: 'r1024' },
    { algorithm: 'rsa', bits: 2048, selector: 'r2048' },
    { algorithm: 'ed25519', bits: undefined, selector: 'ed' },
  ] as const;
  const bodies: string[] = [];
  for (const c of cases) {
    const key = store.generate({ domain: 'Example.COM.', selector: c.selector, algorithm: c.algorithm, bits: c.bits });
    assert.equal(key.domain, 'example.com', 'domains are stored lower-case without the trailing dot');
    assert.equal(key.selector, c.selector);
    assert.equal(key.algorithm, c.algorithm);
    assert.equal(key.bits, c.bits ?? 256);
    assert.equal(key.state, 'pending');
    assert.equal(key.activatedAt, null);
    assert.ok(!Number.isNaN(Date.parse(key.createdAt)), `createdAt ${key.createdAt} is not a date`);
    assert.equal(key.file, `${c.selector}._domainkey.example.com.pem`);

    const pem = readFileSync(join(store.dir, key.file), 'utf8');
    assert.ok(pem.startsWith(`-----BEGIN ${PRIVATE_ARMOUR}-----\n`), `${key.file} is not a PKCS#8 PEM file`);
    bodies.push(pem.split('\n')[1] ?? '');
    const privateKey = createPrivateKey(pem);
    assert.equal(privateKey.asymmetricKeyType, c.algorithm);
    if (c.algorithm === 'rsa') assert.equal(privateKey.asymmetricKeyDetails?.modulusLength, c.bits);

    const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
    const expected = c.algorithm === 'rsa' ? spki : spki.subarray(-32);
    assert.equal(key.publicData, expected.toString('base64'), 'p= is not the public half of the key file');
    if (c.algorithm === 'ed25519') assert.equal(Buffer.from(key.publicData, 'base64').length, 32, 'an Ed25519 p= is the bare 32-byte key (RFC 8463)');
    const digest = createHash('sha256').update(expected).digest('base64').replace(/=+$/, '');
    assert.equal(key.fingerprint, `SHA256:${digest}`);
    assert.ok(signsFor(privateKey, key), 'a signature by the key file does not verify with the published key');
  }
  assert.deepEqual(
    store.list().map((k) => `${k.selector}/${k.algorithm}/${k.bits}`),
    ['r1024/rsa/1024', 'r2048/rsa/2048', 'ed/ed25519/256'],
  );

  // The database holds metadata only: no key material, in the main file or the WAL.
  const dbBytes = readdirSync(store.dir)
    .filter((f) => f.startsWith('keys.db'))
    .map((f) => readFileSync(join(store.dir, f)).toString('latin1'))
    .join('');
  assert.ok(!dbBytes.includes(PRIVATE_ARMOUR), 'the database holds PEM key material');
  for (const body of bodies) assert.ok(body.length > 40 && !dbBytes.includes(body.slice(0, 40)), 'the database holds key material');
});

test('default selectors are s<yyyymm> plus the first free letter, unique per domain', () => {
  const store = openStore();
  const s = stem();
  const b = store.generate({ domain: 'example.com', selector: `${s}b`, algorithm: 'ed25519' });
  const defaults = [1, 2, 3].map(() => store.generate({ domain: 'example.com', algorithm: 'ed25519' }).selector);
  assert.deepEqual(defaults, [`${s}a`, `${s}c`, `${s}d`]);
  assert.equal(store.generate({ domain: 'example.org', algorithm: 'ed25519' }).selector, `${s}a`, 'each domain counts its own selectors');

  // An explicit selector that is taken is refused, and the existing key file is left alone.
  const file = join(store.dir, b.file);
  const before = readFileSync(file);
  expectUserError(
    () => store.generate({ domain: 'example.com', selector: `${s}B`, algorithm: 'rsa', bits: 1024 }),
    new RegExp(`example\\.com already has a key with selector ${s}b`),
    /--selector/,
  );
  assert.ok(readFileSync(file).equals(before), 'the existing key file was overwritten');
  assert.equal(store.get('example.com', `${s}b`).fingerprint, b.fingerprint);
  assert.equal(store.list('example.com').length, 4);
});

test('invalid domains, selectors and key sizes are refused with a UserError saying what and how', () => {
  const store = openStore();
  for (const domain of ['localhost', 'com', 'exa_mple.com', '-bad.example', 'bad-.example', 'a..example', 'a b.example', '', `${'x'.repeat(64)}.example`]) {
    const err = expectUserError(() => store.generate({ domain, algorithm: 'ed25519' }), /is not a valid domain name/, /example\.com/);
    assert.ok(err.message.includes(`"${domain}"`), `the message does not name the bad domain: ${err.message}`);
  }
  for (const selector of ['bad selector', 'sel_1', '-x', 'x-', 'a..b', `${'s'.repeat(64)}`]) {
    const err = expectUserError(
      () => store.generate({ domain: 'example.com', selector, algorithm: 'ed25519' }),
      /is not a valid selector/,
      /letters, digits and hyphens/,
    );
    assert.ok(err.message.includes(`"${selector}"`), `the message does not name the bad selector: ${err.message}`);
  }
  for (const bits of [512, 1000, 8192]) {
    expectUserError(
      () => store.generate({ domain: 'example.com', algorithm: 'rsa', bits }),
      new RegExp(`RSA keys of ${bits} bits are not offered`),
      /--bits 1024, 2048, 3072, 4096/,
    );
  }
  assert.deepEqual(store.list(), [], 'a refused key left a row behind');
  assert.deepEqual(pemFiles(store.dir), [], 'a refused key left a file behind');
});

test('import refuses short RSA keys, unsupported key types and unreadable PEM without echoing the key', () => {
  const store = openStore();
  const short = generateKeyPairSync('rsa', { modulusLength: 512 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  expectUserError(
    () => store.import({ domain: 'example.com', selector: 'short', pem: short, source: 'short.pem' }),
    /short\.pem holds a 512-bit RSA key/,
    /1024/,
  );
  const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  expectUserError(() => store.import({ domain: 'example.com', selector: 'ec', pem: ec, source: 'ec.pem' }), /unsupported key type ec/, /RSA|Ed25519/);
  const broken = `-----BEGIN ${PRIVATE_ARMOUR}-----\nTm90IGEga2V5\n-----END ${PRIVATE_ARMOUR}-----\n`;
  expectUserError(
    () => store.import({ domain: 'example.com', selector: 'broken', pem: broken, source: 'broken.pem' }),
    /broken\.pem is not a readable PEM private key/,
    /unencrypted RSA or Ed25519/,
  );
  assert.deepEqual(store.list(), []);
  assert.deepEqual(pemFiles(store.dir), []);
});

test('--activate is refused while the domain has an active key of that algorithm', () => {
  const store = openStore();
  store.generate({ domain: 'example.com', selector: 'r1', algorithm: 'rsa', bits: 1024, activate: true });
  expectUserError(
    () => store.generate({ domain: 'example.com', selector: 'r2', algorithm: 'rsa', bits: 1024, activate: true }),
    /example\.com already has an active rsa key/,
    /without --activate.*keys activate/,
  );
  assert.equal(store.find('example.com', 'r2'), undefined, 'the refused key was stored');
  assert.ok(!existsSync(join(store.dir, 'r2._domainkey.example.com.pem')), 'the refused key left a file behind');

  // Another algorithm (dual signing), another domain, or no --activate: all fine.
  assert.equal(store.generate({ domain: 'example.com', selector: 'e1', algorithm: 'ed25519', activate: true }).state, 'active');
  assert.equal(store.generate({ domain: 'example.org', selector: 'r1', algorithm: 'rsa', bits: 1024, activate: true }).state, 'active');
  assert.equal(store.generate({ domain: 'example.com', selector: 'r2', algorithm: 'rsa', bits: 1024 }).state, 'pending');
  assert.deepEqual(
    store
      .activeKeys('example.com')
      .map((k) => k.selector)
      .sort(),
    ['e1', 'r1'],
  );
});

test('activate retires the previous active key of the same algorithm, and only that one', () => {
  const store = openStore();
  store.generate({ domain: 'example.com', selector: 'r1', algorithm: 'rsa', bits: 1024, activate: true });
  store.generate({ domain: 'example.com', selector: 'e1', algorithm: 'ed25519', activate: true });
  store.generate({ domain: 'example.org', selector: 'r1', algorithm: 'rsa', bits: 1024, activate: true });
  store.generate({ domain: 'example.com', selector: 'r2', algorithm: 'rsa', bits: 1024 });

  const r2 = store.activate('example.com', 'r2');
  assert.equal(r2.state, 'active');
  assert.ok(r2.activatedAt);
  const r1 = store.get('example.com', 'r1');
  assert.equal(r1.state, 'retiring', 'the previous active RSA key did not retire');
  assert.ok(r1.retiredAt, 'retiredAt is not set');
  assert.equal(store.get('example.com', 'e1').state, 'active', 'the Ed25519 key retired with the RSA one');
  assert.equal(store.get('example.org', 'r1').state, 'active', "another domain's key retired");
  const signing = store.activeKeys('example.com');
  assert.deepEqual(signing.map((k) => k.selector).sort(), ['e1', 'r2']);
  for (const active of signing) assert.ok(signsFor(active.privateKey as KeyObject, store.get('example.com', active.selector)));

  // Back again: a retiring key can be re-activated; activating an active key changes nothing.
  assert.equal(store.activate('example.com', 'r1').retiredAt, null);
  assert.equal(store.get('example.com', 'r2').state, 'retiring');
  assert.deepEqual(store.activate('example.com', 'r1'), store.get('example.com', 'r1'));
  assert.deepEqual(
    store
      .activeKeys('example.com')
      .map((k) => k.selector)
      .sort(),
    ['e1', 'r1'],
  );
});

test('revoke refuses an active key; a revoked key publishes an empty p= and cannot come back', () => {
  const store = openStore();
  store.generate({ domain: 'example.com', selector: 'r1', algorithm: 'rsa', bits: 1024, activate: true });
  expectUserError(
    () => store.revoke('example.com', 'r1'),
    /key r1 for example\.com is still signing/,
    /retire it first: dkim-relay keys retire --domain example\.com --selector r1/,
  );
  assert.equal(store.get('example.com', 'r1').state, 'active');

  assert.equal(store.retire('example.com', 'r1').state, 'retiring');
  const revoked = store.revoke('example.com', 'r1');
  assert.equal(revoked.state, 'revoked');
  assert.ok(revoked.revokedAt);
  const record = txtRecord(revoked);
  assert.equal(record.value, 'v=DKIM1; k=rsa; p=');
  assert.equal(record.strings.join(''), record.value);
  assert.equal(store.publishedValue('r1._domainkey.example.com'), 'v=DKIM1; k=rsa; p=');
  assert.equal(store.publishedValue('R1._domainkey.Example.com.'), 'v=DKIM1; k=rsa; p=');
  expectUserError(() => store.activate('example.com', 'r1'), /key r1 for example\.com is revoked/, /generate a new key/);

  // A pending key may be revoked straight away; only an active key can retire.
  store.generate({ domain: 'example.com', selector: 'e1', algorithm: 'ed25519' });
  expectUserError(() => store.retire('example.com', 'e1'), /is pending, not active/, /only an active key/);
  assert.equal(store.revoke('example.com', 'e1').state, 'revoked');
  assert.equal(store.publishedValue('e1._domainkey.example.com'), 'v=DKIM1; k=ed25519; p=');
  expectUserError(() => store.get('example.com', 'nope'), /no key nope for example\.com/, /keys list/);
});

test('the store directory is 0700 (a 0755 one is tightened) and key files are 0600', () => {
  const base = tempDir();
  const dir = join(base, 'deep', 'keys');
  const store = openStore(dir);
  assert.equal(octal(modeOf(dir)), '0700');
  assert.equal(store.tightenedDir, false);
  for (const algorithm of ['rsa', 'ed25519'] as const) {
    const key = store.generate({ domain: 'example.com', algorithm, bits: 1024 });
    assert.equal(octal(modeOf(join(dir, key.file))), '0600', `${key.file} mode`);
  }
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.includes('.tmp-')),
    [],
    'temporary key files were left behind',
  );

  const wide = join(base, 'checkout-keys');
  mkdirSync(wide);
  chmodSync(wide, 0o755);
  const tightened = openStore(wide);
  assert.equal(tightened.tightenedDir, true);
  assert.equal(octal(modeOf(wide)), '0700');
  tightened.close();
  assert.equal(openStore(wide).tightenedDir, false, 'an already private directory was reported as tightened');
});

test('an active key file that others can read stops checkActiveKeys with a UserError naming the file and chmod 600', () => {
  const dir = join(tempDir(), 'keys');
  const writer = openStore(dir);
  const key = writer.generate({ domain: 'example.com', selector: 'open', algorithm: 'ed25519', activate: true });
  writer.close();
  const file = join(dir, key.file);
  for (const mode of [0o644, 0o640, 0o604]) {
    chmodSync(file, mode);
    const store = openStore(dir); // as the daemon at start-up
    const err = expectUserError(() => store.checkActiveKeys(), new RegExp(`readable by others \\(mode ${octal(mode)}\\)`), /chmod 600/);
    assert.match(err.message, escapeRegExp(file));
    assert.match(err.hint ?? '', escapeRegExp(`run: chmod 600 ${file}`));
    // Signing and `keys export --private` refuse it as well.
    expectUserError(() => store.activeKeys('example.com'), escapeRegExp(file), /chmod 600/);
    expectUserError(() => store.privatePem(key), escapeRegExp(file), /chmod 600/);
    store.close();
  }
  chmodSync(file, 0o600);
  const fixed = openStore(dir);
  assert.deepEqual(
    fixed.checkActiveKeys().map((k) => k.selector),
    ['open'],
  );
  assert.equal(fixed.activeKeys('example.com').length, 1);
});

test('a missing or damaged active key file holds back its domain with a UserError, never echoing the file', () => {
  const dir = join(tempDir(), 'keys');
  const writer = openStore(dir);
  const gone = writer.generate({ domain: 'example.com', selector: 'gone', algorithm: 'ed25519', activate: true });
  writer.close();
  const file = join(dir, gone.file);
  rmSync(file);
  const store = openStore(dir);
  assert.deepEqual(store.checkActiveKeys(), [], 'start-up goes on: the other domains can sign');
  const err = expectUserError(() => store.activeKeys('example.com'), /is missing/, /restore it from backup|revoke/);
  assert.match(err.message, escapeRegExp(file));
  store.close();

  // A file that is there but holds no readable key (armour included, body garbage).
  writeFileSync(file, `-----BEGIN ${PRIVATE_ARMOUR}-----\nTm90IGEga2V5IGF0IGFsbA==\n-----END ${PRIVATE_ARMOUR}-----\n`, { mode: 0o600 });
  const again = openStore(dir);
  const damaged = expectUserError(() => again.activeKeys('example.com'), /is not a readable PEM private key/, /restore it from backup|revoke/);
  assert.match(damaged.message, escapeRegExp(file));
  assert.ok(!damaged.toLine().includes('Tm90IGEga2V5'), 'the error echoes the file content');
});

test('signingDomainFor falls back to the parent domain, but never to a bare TLD', () => {
  const store = openStore();
  const key = store.generate({ domain: 'example.com', selector: 'e1', algorithm: 'ed25519', activate: true });
  store.generate({ domain: 'example.net', selector: 'e1', algorithm: 'ed25519' }); // pending: does not sign
  assert.equal(store.signingDomainFor('example.com'), 'example.com');
  assert.equal(store.signingDomainFor('mail.example.com'), 'example.com');
  assert.equal(store.signingDomainFor('a.b.mail.example.com'), 'example.com');
  assert.equal(store.signingDomainFor('MAIL.Example.COM.'), 'example.com');
  assert.equal(store.signingDomainFor('mail.notexample.com'), null, 'matched across a label boundary');
  assert.equal(store.signingDomainFor('example.org'), null);
  assert.equal(store.signingDomainFor('mail.example.net'), null, 'a pending key signs');

  // An active key at "com" itself (the CLI refuses the name; put it straight into the database).
  copyFileSync(join(store.dir, key.file), join(store.dir, 'tld._domainkey.com.pem'));
  chmodSync(join(store.dir, 'tld._domainkey.com.pem'), 0o600);
  const raw = new Database(store.dbFile);
  try {
    raw
      .prepare(
        `INSERT INTO keys (domain, selector, algorithm, bits, state, public_data, fingerprint, file, created_at, activated_at)
                 VALUES ('com', 'tld', 'ed25519', 256, 'active', ?, ?, 'tld._domainkey.com.pem', ?, ?)`,
      )
      .run(key.publicData, key.fingerprint, key.createdAt, key.createdAt);
  } finally {
    raw.close();
  }
  assert.equal(store.activeKeys('com').length, 1, 'the test key at "com" is not live, so the next checks prove nothing');
  assert.equal(store.signingDomainFor('other.com'), null, 'fell back to the TLD');
  assert.equal(store.signingDomainFor('mail.other.com'), null, 'fell back to the TLD');
  assert.equal(store.signingDomainFor('mail.example.com'), 'example.com');
});

test("a second store on the same directory sees the first one's changes (the daemon picks up the CLI's)", () => {
  const dir = join(tempDir(), 'keys');
  const cli = openStore(dir);
  const daemon = openStore(dir);
  assert.deepEqual(daemon.activeKeys('example.com'), []);
  assert.equal(daemon.signingDomainFor('mail.example.com'), null);

  cli.generate({ domain: 'example.com', selector: 'one', algorithm: 'ed25519', activate: true });
  assert.deepEqual(
    daemon.activeKeys('example.com').map((k) => k.selector),
    ['one'],
    'a key activated elsewhere was not seen',
  );
  assert.equal(daemon.signingDomainFor('mail.example.com'), 'example.com');

  cli.generate({ domain: 'example.com', selector: 'two', algorithm: 'ed25519' });
  assert.deepEqual(
    daemon.activeKeys('example.com').map((k) => k.selector),
    ['one'],
    'a pending key signs',
  );
  cli.activate('example.com', 'two');
  const now = daemon.activeKeys('example.com');
  assert.deepEqual(
    now.map((k) => k.selector),
    ['two'],
    'the rotation was not seen',
  );
  assert.ok(signsFor(now[0]!.privateKey as KeyObject, cli.get('example.com', 'two')), 'the daemon signs with a key that does not match the published one');

  cli.retire('example.com', 'two');
  assert.deepEqual(daemon.activeKeys('example.com'), [], 'a retired key still signs');
  assert.equal(daemon.signingDomainFor('mail.example.com'), null);

  // And the other way round.
  daemon.activate('example.com', 'one');
  assert.deepEqual(
    cli.activeKeys('example.com').map((k) => k.selector),
    ['one'],
  );
});

test('a locked database gives a UserError saying so after the timeout, and leaves no key file behind', () => {
  const dir = join(tempDir(), 'keys');
  openStore(dir).generate({ domain: 'example.com', selector: 'before', algorithm: 'ed25519' });
  const holder = new Database(join(dir, 'keys.db'));
  holder.exec('BEGIN IMMEDIATE');
  try {
    const started = performance.now();
    const err = expectUserError(
      () => openStore(dir, { timeoutMs: 200 }).generate({ domain: 'example.com', selector: 'during', algorithm: 'ed25519' }),
      /key store database .*keys\.db is locked by another process/,
      /retry/,
    );
    const waited = performance.now() - started;
    assert.match(err.message, escapeRegExp(join(dir, 'keys.db')));
    assert.ok(waited >= 150 && waited < 3000, `waited ${Math.round(waited)} ms, not about the 200 ms asked for`);
    assert.ok(!existsSync(join(dir, 'during._domainkey.example.com.pem')), 'the refused key left its file behind');
  } finally {
    holder.exec('ROLLBACK');
    holder.close();
  }
  const store = openStore(dir, { timeoutMs: 200 });
  assert.equal(store.generate({ domain: 'example.com', selector: 'during', algorithm: 'ed25519' }).state, 'pending');
  assert.deepEqual(
    store.list().map((k) => k.selector),
    ['before', 'during'],
  );
});

test("two writers racing for the same default selector must not delete each other's key file", () => {
  // Process A and process B both read the selector list before either inserts
  // (the window between list() and INSERT in add()). B's stale read is simulated
  // by hiding A's row from B's list().
  const dir = join(tempDir(), 'keys');
  const a = openStore(dir);
  const b = openStore(dir);
  const mine = a.generate({ domain: 'example.com', selector: 'same', algorithm: 'ed25519', activate: true });
  const file = join(dir, mine.file);
  const before = readFileSync(file);
  Object.assign(b, { list: () => [] });
  assert.throws(() => b.generate({ domain: 'example.com', selector: 'same', algorithm: 'ed25519' }));
  assert.ok(existsSync(file), "the losing writer deleted the winner's key file");
  assert.ok(readFileSync(file).equals(before), "the losing writer replaced the winner's key file");
});

test('planned transitions apply all or nothing: a key no longer in the state they leave rolls the whole step back', async () => {
  const { decide } = await import('../../src/keys/lifecycle.ts');
  const store = openStore();
  const old = store.generate({ domain: 'example.com', algorithm: 'ed25519', activate: true });
  const next = store.generate({ domain: 'example.com', algorithm: 'ed25519', step: { by: 'scheduler', why: 'rotation due' } });
  const at = new Date('2030-01-01T00:00:00.000Z');
  const decision = decide(store.list('example.com'), next.id, 'active', { at, by: 'scheduler', why: 'DNS served it' });
  assert.ok(decision.ok);
  assert.equal(decision.transitions.length, 2, 'the old key retires with it');

  // Someone retires the old key by hand first: the planned step no longer fits and changes nothing.
  store.retire('example.com', old.selector);
  const before = store.history().length;
  assert.equal(store.applyTransitions(decision.transitions), false);
  assert.equal(store.get('example.com', next.selector).state, 'pending', 'the new key was not activated alone');
  assert.equal(store.history().length, before, 'no event was written');

  // Planned again on the keys as they are, it applies once; a second time it is a no-op.
  const again = decide(store.list('example.com'), next.id, 'active', { at, by: 'scheduler', why: 'DNS served it' });
  assert.ok(again.ok);
  assert.equal(store.applyTransitions(again.transitions), true);
  assert.equal(store.applyTransitions(again.transitions), false);
  const events = store.history('example.com');
  assert.deepEqual(events.at(-1), {
    ...events.at(-1)!,
    selector: next.selector,
    from: 'pending',
    to: 'active',
    by: 'scheduler',
    why: 'DNS served it',
    at: at.toISOString(),
  });
  assert.equal(events.filter((e) => e.to === 'active' && e.selector === next.selector).length, 1);
  assert.equal(store.get('example.com', next.selector).activatedAt, at.toISOString());
});
