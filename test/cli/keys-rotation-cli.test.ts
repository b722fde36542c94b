// `keys rotate`, `keys remove` and `keys history` through the real binary, on
// a real key store: what each makes, prints and refuses, and the exit status.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteKeyStore } from '../../src/keys/store.ts';
import { tempDir } from '../helpers/tmp.ts';
import { PRIVATE_ARMOUR, redact } from '../keys/support.ts';
import { dkimRelay, type Run } from './support.ts';

function shown(run: Run): string {
  return `exit ${run.code}\n--- stdout\n${redact(run.stdout).slice(0, 3000)}\n--- stderr\n${redact(run.stderr).slice(0, 3000)}`;
}

function assertOneLine(run: Run, code: number, what: RegExp): void {
  assert.equal(run.code, code, `expected exit ${code}:\n${shown(run)}`);
  assert.equal(run.stdout, '', `stdout should be empty:\n${shown(run)}`);
  const lines = run.stderr.replace(/\n$/, '').split('\n');
  assert.equal(lines.length, 1, `expected one stderr line:\n${shown(run)}`);
  assert.match(lines[0]!, /^dkim-relay: /);
  assert.match(lines[0]!, what);
  assert.doesNotMatch(run.stderr, /\bat .*:\d+:\d+|\.ts:\d+|unexpected error/);
}

function ok(run: Run): Run {
  assert.equal(run.code, 0, `expected success:\n${shown(run)}`);
  assert.ok(!run.stdout.includes(PRIVATE_ARMOUR) && !run.stderr.includes(PRIVATE_ARMOUR), 'key material in the output');
  return run;
}

/** A store with an active RSA-1024 key for a.test and an active Ed25519 plus RSA-2048 pair for b.test. */
function setUp(removeAfter = '30d') {
  const dir = tempDir('dkim-relay-rotate-cli-');
  const keysDir = join(dir, 'keys');
  writeFileSync(join(dir, 'dkim-relay.yaml'), `keys:\n  dir: ${JSON.stringify(keysDir)}\nrotation:\n  publishFor: 36h\n  removeAfter: ${removeAfter}\n`);
  const store = SqliteKeyStore.open(keysDir);
  store.generate({ domain: 'a.test', selector: 'old', algorithm: 'rsa', bits: 1024, activate: true });
  store.generate({ domain: 'b.test', selector: 'r1', algorithm: 'rsa', bits: 2048, activate: true });
  store.generate({ domain: 'b.test', selector: 'e1', algorithm: 'ed25519', activate: true });
  store.close();
  const run = (...args: string[]) => dkimRelay([...args, '--config', join(dir, 'dkim-relay.yaml')], dir);
  return { dir, keysDir, run };
}

describe('keys rotate, remove and history', { concurrency: 3 }, () => {
  test('rotate makes a pending key like the active one, with a fresh selector, and says what happens next', async () => {
    const { keysDir, run } = setUp();
    const out = ok(await run('keys', 'rotate', '--domain', 'a.test'));
    assert.match(out.stdout, /^a\.test s\d{6}a: rsa 1024 bits, pending, SHA256:/m);
    assert.match(out.stdout, /Publish this record:\ns\d{6}a\._domainkey\.a\.test\. 3600 IN TXT \( "v=DKIM1; k=rsa; "/);
    assert.match(
      out.stdout,
      /replaces old\. Once every DNS server asked has served this record for 36h \(rotation\.publishFor\), the scheduler inside `dkim-relay serve` activates it and old retires\./,
    );
    const store = SqliteKeyStore.open(keysDir);
    try {
      assert.deepEqual(
        store.list('a.test').map((k) => [k.selector === 'old' ? 'old' : 'new', k.state, k.bits]),
        [
          ['old', 'active', 1024],
          ['new', 'pending', 1024],
        ],
      );
      assert.match(store.history('a.test').at(-1)!.why, /^keys rotate: replaces old$/);
    } finally {
      store.close();
    }
    // A second rotate while the first is under way is refused: exit 2, one line naming the pending key.
    assertOneLine(await run('keys', 'rotate', '--domain', 'a.test'), 2, /a rotation is already under way: s\d{6}a \(rsa\) is pending — publish its record/);
  });

  test('rotate --all rotates each active key of each domain; --json lists them; --algorithm and --bits switch', async () => {
    const { run } = setUp();
    const made = JSON.parse(ok(await run('keys', 'rotate', '--all', '--json')).stdout) as {
      domain: string;
      algorithm: string;
      bits: number;
      state: string;
      replaces: string;
      record: { name: string };
    }[];
    assert.deepEqual(
      made.map((k) => [k.domain, k.algorithm, k.bits, k.state, k.replaces]),
      [
        ['a.test', 'rsa', 1024, 'pending', 'old'],
        ['b.test', 'rsa', 2048, 'pending', 'r1'],
        ['b.test', 'ed25519', 256, 'pending', 'e1'],
      ],
    );
    // Under --all a domain already rotating is skipped with a warning, not refused.
    const again = ok(await run('keys', 'rotate', '--all'));
    assert.equal(again.stdout, 'nothing rotated: each domain already has a rotation under way\n');
    const skipped = again.stderr.trimEnd().split('\n');
    assert.equal(skipped.length, 3, shown(again));
    assert.match(skipped[0]!, /^warning: a\.test: a rotation is already under way: s\d{6}a \(rsa\) is pending; skipped$/);
    const { run: run2 } = setUp();
    const bigger = JSON.parse(ok(await run2('keys', 'rotate', '--domain', 'a.test', '--bits', '2048', '--json')).stdout) as { bits: number }[];
    assert.equal(bigger[0]!.bits, 2048);
    const switched = JSON.parse(ok(await run2('keys', 'rotate', '--domain', 'b.test', '--algorithm', 'ed25519', '--json')).stdout) as {
      algorithm: string;
      replaces: string;
    }[];
    assert.deepEqual(
      switched.map((k) => [k.algorithm, k.replaces]),
      [['ed25519', 'e1']],
    );
  });

  test('rotate refuses what it cannot do with one line and exit 2', async () => {
    const { run } = setUp();
    assertOneLine(await run('keys', 'rotate'), 2, /name the domains to rotate — give --domain D/);
    assertOneLine(await run('keys', 'rotate', '--all', '--domain', 'a.test'), 2, /--all and --domain exclude each other/);
    assertOneLine(await run('keys', 'rotate', '--domain', 'none.test'), 2, /none\.test has no active key to rotate — generate one/);
    assertOneLine(await run('keys', 'rotate', '--domain', 'a.test', '--algorithm', 'ed25519', '--bits', '2048'), 2, /--bits applies to RSA keys only/);
  });

  test('remove of a pending key made by mistake is one command: no revoke, its file deleted, its history kept', async () => {
    const { keysDir, run } = setUp();
    ok(await run('keys', 'generate', '--domain', 'a.test', '--selector', 'typo', '--bits', '1024'));
    const file = join(keysDir, 'typo._domainkey.a.test.pem');
    assert.ok(existsSync(file));
    const out = ok(await run('keys', 'remove', '--domain', 'a.test', '--selector', 'typo'));
    assert.match(
      out.stdout,
      /^a\.test typo: removed \(it never signed\); its private key file is deleted\nIf you published its record, withdraw it:\ntypo\._domainkey\.a\.test\. 3600 IN TXT /,
    );
    assert.ok(!existsSync(file), 'the key file is gone');
    const history = ok(await run('keys', 'history', '--domain', 'a.test', '--json'));
    assert.deepEqual(
      (JSON.parse(history.stdout) as { selector: string; from: string | null; to: string }[]).filter((e) => e.selector === 'typo').map((e) => [e.from, e.to]),
      [
        [null, 'pending'],
        ['pending', 'removed'],
      ],
    );
  });

  test('remove refuses a key that signs or may still verify mail; a revoked one only after rotation.removeAfter unless --force; it prints the record to withdraw', async () => {
    const { keysDir, run } = setUp();
    const store = SqliteKeyStore.open(keysDir);
    const next = store.generate({ domain: 'a.test', selector: 'new', algorithm: 'rsa', bits: 1024 });
    store.activate('a.test', next.selector);
    const file = join(keysDir, 'old._domainkey.a.test.pem');
    store.close();

    assertOneLine(
      await run('keys', 'remove', '--domain', 'a.test', '--selector', 'old'),
      2,
      /key old for a\.test is retiring, not revoked — revoke it first: dkim-relay keys revoke --domain a\.test --selector old/,
    );
    assertOneLine(await run('keys', 'remove', '--domain', 'a.test', '--selector', 'new'), 2, /key new for a\.test is still signing/);
    const revoked = ok(await run('keys', 'revoke', '--domain', 'a.test', '--selector', 'old'));
    assert.match(revoked.stdout, /^Publish this record in place of the old one \(its empty p= says the key is revoked\):\nold\._domainkey\.a\.test\. .*"p="/ms);
    assertOneLine(
      await run('keys', 'remove', '--domain', 'a.test', '--selector', 'old'),
      2,
      /was revoked .* UTC; it is kept for 30d \(rotation\.removeAfter\), until .* — wait until then .*or add --force/,
    );
    assert.ok(existsSync(file));

    const out = ok(await run('keys', 'remove', '--domain', 'a.test', '--selector', 'old', '--force'));
    assert.match(
      out.stdout,
      /^a\.test old: removed; its private key file is deleted\nWithdraw this record:\nold\._domainkey\.a\.test\. 3600 IN TXT \( "v=DKIM1; k=rsa; "\n\t"p=" \)\n$/,
    );
    assert.ok(!existsSync(file), 'the key file is gone');
    const dns = ok(await run('keys', 'dns', '--domain', 'a.test', '--format', 'value'));
    assert.doesNotMatch(dns.stdout, /^old\._domainkey/m, 'a removed key has nothing to publish');
    assertOneLine(
      await run('keys', 'activate', '--domain', 'a.test', '--selector', 'old', '--force'),
      2,
      /key old for a\.test was removed — a removed key is gone for good/,
    );
  });

  test('remove without --force once removeAfter has passed; --json names the record to withdraw', async () => {
    const { keysDir, run } = setUp('1h');
    const store = SqliteKeyStore.open(keysDir);
    store.generate({ domain: 'a.test', selector: 'new', algorithm: 'rsa', bits: 1024 });
    store.activate('a.test', 'new');
    store.revoke('a.test', 'old', { at: new Date(Date.now() - 2 * 3600_000) });
    store.close();
    const removed = JSON.parse(ok(await run('keys', 'remove', '--domain', 'a.test', '--selector', 'old', '--json')).stdout) as {
      state: string;
      withdraw: { name: string; value: string };
    };
    assert.equal(removed.state, 'removed');
    assert.deepEqual([removed.withdraw.name, removed.withdraw.value], ['old._domainkey.a.test', 'v=DKIM1; k=rsa; p=']);
  });

  test('history prints the audit table, by domain, as a table or JSON', async () => {
    const { keysDir, run } = setUp();
    ok(await run('keys', 'rotate', '--domain', 'a.test'));
    const table = ok(await run('keys', 'history', '--domain', 'a.test'))
      .stdout.trimEnd()
      .split('\n');
    assert.match(table[0]!, /^AT\s+DOMAIN\s+SELECTOR\s+FROM\s+TO\s+BY\s+WHY\s+CHAIN$/);
    assert.match(table[1]!, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+a\.test\s+old\s+-\s+active\s+cli\s+created and activated\s+domain$/);
    assert.match(table[2]!, /^\S+ \S+\s+a\.test\s+s\d{6}a\s+-\s+pending\s+cli\s+keys rotate: replaces old\s+domain$/);
    assert.equal(table.length, 3);
    const events = JSON.parse(ok(await run('keys', 'history', '--json')).stdout) as { domain: string; to: string; by: string }[];
    assert.deepEqual(events.map((e) => e.domain).sort(), ['a.test', 'a.test', 'b.test', 'b.test']);
    // The audit trail is the events table itself.
    const db = new Database(join(keysDir, 'keys.db'), { readonly: true });
    assert.equal(db.prepare('SELECT count(*) FROM events').pluck().get(), 4);
    db.close();
    assert.match(ok(await run('keys', 'history', '--domain', 'z.test')).stdout, /^no key events for z\.test\n$/);
  });
});
