// The real binary in real subprocesses: `keys …` against a store in a temp
// directory, `config check`, and the one-line exit-2 errors.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { SqliteKeyStore } from '../../src/keys/store.ts';
import { tempDir } from '../helpers/tmp.ts';
import { PRIVATE_ARMOUR, redact } from '../keys/support.ts';
import { dkimRelay, type Run } from './support.ts';
import { requireTool } from '../helpers/tools.ts';

const PKCS8_HEAD = `-----BEGIN ${PRIVATE_ARMOUR}-----\n`;

/** What a run did, fit for an assertion message: key material redacted. */
function shown(run: Run): string {
  return `exit ${run.code}\n--- stdout\n${redact(run.stdout).slice(0, 3000)}\n--- stderr\n${redact(run.stderr).slice(0, 3000)}`;
}

function assertSucceeded(run: Run): void {
  assert.equal(run.code, 0, `expected success:\n${shown(run)}`);
  assert.equal(run.stderr, '', `unexpected stderr:\n${shown(run)}`);
}

/** Exit 2, nothing on stdout, exactly one line on stderr, no stack trace; returns that line. */
function assertUsageError(run: Run, what: RegExp): string {
  assert.equal(run.code, 2, `expected exit 2:\n${shown(run)}`);
  assert.equal(run.stdout, '', `stdout should be empty:\n${shown(run)}`);
  assert.ok(run.stderr.endsWith('\n'), `stderr should end with a newline:\n${shown(run)}`);
  const lines = run.stderr.slice(0, -1).split('\n');
  assert.equal(lines.length, 1, `expected exactly one stderr line, got ${lines.length}:\n${shown(run)}`);
  const line = lines[0]!;
  assert.ok(line.startsWith('dkim-relay: '), `the line should start with "dkim-relay: ":\n${shown(run)}`);
  assert.doesNotMatch(line, /\bat .*:\d+:\d+|Error:|\.ts:\d+/, `the line looks like a stack trace:\n${shown(run)}`);
  assert.ok(!run.stderr.includes(PRIVATE_ARMOUR), 'key material on stderr');
  assert.match(line, what);
  return line;
}

/** A UserError line: "dkim-relay: <what is wrong> — <how to mend it>". */
function assertMendable(line: string): void {
  assert.match(line, /^dkim-relay: \S.* — \S.*$/, `not "what — how": ${line}`);
}

function modeOf(path: string): string {
  return (statSync(path).mode & 0o777).toString(8).padStart(4, '0');
}

function stem(now = new Date()): string {
  return `s${now.getUTCFullYear()}${String(now.getUTCMonth() + 1).padStart(2, '0')}`;
}

/** The p= of the record `keys generate` printed (zone form), re-joined. */
function printedP(run: Run): string {
  const value = [...run.stdout.matchAll(/"([^"]*)"/g)].map((m) => m[1]).join('');
  return /p=([A-Za-z0-9+/=]*)$/.exec(value)?.[1] ?? '';
}

function spkiBase64(pem: string): string {
  return createPublicKey(pem).export({ type: 'spki', format: 'der' }).toString('base64');
}

interface ListedKey {
  domain: string;
  selector: string;
  algorithm: string;
  bits: number;
  state: string;
  publicData: string;
  fingerprint: string;
  [other: string]: unknown;
}

interface JsonRecord {
  name: string;
  type: string;
  ttl: number;
  value: string;
  strings: string[];
  state: string;
}

describe('dkim-relay CLI', { concurrency: 4 }, () => {
  before(async () => {
    // One start-up first, so the parallel ones below find V8's code cache warm.
    const warm = await dkimRelay(['--version'], tempDir());
    assert.equal(warm.code, 0, `dkim-relay --version failed:\n${shown(warm)}`);
  });

  describe('keys in the default store, ./keys of the working directory', () => {
    const cwd = tempDir();
    const store = join(cwd, 'keys');
    let rsaRun: Run;
    let edRun: Run;
    let rsaSelector = '';
    let edSelector = '';

    before(async () => {
      rsaRun = await dkimRelay(['keys', 'generate', '--domain', 'example.com'], cwd);
      edRun = await dkimRelay(['keys', 'generate', '--domain', 'example.com', '--algorithm', 'ed25519', '--activate', '--json'], cwd);
      rsaSelector = /^example\.com (\S+):/.exec(rsaRun.stdout)?.[1] ?? '(none)';
      edSelector = /"selector": "([^"]+)"/.exec(edRun.stdout)?.[1] ?? '(none)';
    });

    test('keys generate: an RSA-2048 key under a default selector, the record to publish, files 0600 in a 0700 ./keys', () => {
      assertSucceeded(rsaRun);
      const lines = rsaRun.stdout.split('\n');
      const head = /^example\.com (s\d{6}[a-z]+): rsa 2048 bits, pending, SHA256:[A-Za-z0-9+/]{43}$/.exec(lines[0] ?? '');
      assert.ok(head, `unexpected first line:\n${shown(rsaRun)}`);
      assert.equal(head[1], rsaSelector);
      assert.ok([`${stem()}a`, `${stem(new Date(Date.now() - 86_400_000))}a`].includes(rsaSelector), `default selector ${rsaSelector}`);
      assert.equal(lines[1], 'Publish this record:');
      assert.match(lines[2] ?? '', new RegExp(`^${rsaSelector}\\._domainkey\\.example\\.com\\. 3600 IN TXT \\( "v=DKIM1; k=rsa; "$`));
      assert.ok(!rsaRun.stdout.includes(PRIVATE_ARMOUR), 'key material on stdout');

      assert.equal(modeOf(store), '0700');
      const file = join(store, `${rsaSelector}._domainkey.example.com.pem`);
      assert.equal(modeOf(file), '0600');
      assert.ok(readFileSync(file, 'utf8').startsWith(PKCS8_HEAD), 'the key file is not PKCS#8');
    });

    test('keys generate --algorithm ed25519 --activate --json: the next selector, active, with its record', () => {
      assertSucceeded(edRun);
      const key = JSON.parse(edRun.stdout) as ListedKey & { record: JsonRecord };
      assert.equal(key.selector, edSelector);
      assert.equal(edSelector, `${rsaSelector.slice(0, -1)}b`, 'the second default selector of the month ends in b');
      assert.equal(key.domain, 'example.com');
      assert.equal(key.algorithm, 'ed25519');
      assert.equal(key.bits, 256);
      assert.equal(key.state, 'active');
      assert.ok(key.activatedAt);
      assert.equal(Buffer.from(key.publicData, 'base64').length, 32);
      assert.equal(key.record.name, `${edSelector}._domainkey.example.com`);
      assert.equal(key.record.value, `v=DKIM1; k=ed25519; p=${key.publicData}`);
      assert.ok(!('file' in key), 'the JSON shows the key file name');
      assert.ok(!edRun.stdout.includes(PRIVATE_ARMOUR), 'key material on stdout');
      // The p= printed is the public half of the file written.
      const spki = Buffer.from(spkiBase64(readFileSync(join(store, `${edSelector}._domainkey.example.com.pem`), 'utf8')), 'base64');
      assert.equal(spki.subarray(-32).toString('base64'), key.publicData);
    });

    test('keys list --json: both keys with their metadata, no file names, no key material', async () => {
      const run = await dkimRelay(['keys', 'list', '--json'], cwd);
      assertSucceeded(run);
      const keys = JSON.parse(run.stdout) as ListedKey[];
      assert.deepEqual(
        keys.map((k) => [k.domain, k.algorithm, k.bits, k.state]),
        [
          ['example.com', 'rsa', 2048, 'pending'],
          ['example.com', 'ed25519', 256, 'active'],
        ],
      );
      const [rsa, ed] = keys as [ListedKey, ListedKey];
      assert.match(rsa.selector, /^s\d{6}a$/);
      assert.match(ed.selector, /^s\d{6}b$/);
      assert.equal(rsa.publicData, spkiBase64(readFileSync(join(store, `${rsa.selector}._domainkey.example.com.pem`), 'utf8')));
      for (const key of keys) {
        assert.match(key.fingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/);
        assert.ok(!('file' in key), 'the JSON shows the key file name');
        for (const field of ['createdAt', 'activatedAt', 'retiredAt', 'revokedAt']) assert.ok(field in key, `${field} is missing`);
      }
      assert.ok(!run.stdout.includes(PRIVATE_ARMOUR), 'key material on stdout');
    });

    test('keys dns --format zone|value|json agree, and the zone form passes named-checkzone', async (t) => {
      if (!requireTool(t, 'named-checkzone')) return;
      const [zone, value, json, listed] = await Promise.all([
        dkimRelay(['keys', 'dns', '--format', 'zone'], cwd),
        dkimRelay(['keys', 'dns', '--format', 'value'], cwd),
        dkimRelay(['keys', 'dns', '--format', 'json', '--domain', 'example.com'], cwd),
        dkimRelay(['keys', 'list', '--json'], cwd),
      ]);
      for (const run of [zone, value, json, listed]) assertSucceeded(run);
      const keys = JSON.parse(listed.stdout) as ListedKey[];
      const records = JSON.parse(json.stdout) as JsonRecord[];
      assert.equal(records.length, 2);
      for (const [i, record] of records.entries()) {
        const key = keys[i]!;
        assert.equal(record.name, `${key.selector}._domainkey.example.com`);
        assert.equal(record.type, 'TXT');
        assert.equal(record.ttl, 3600);
        assert.equal(record.state, key.state);
        assert.equal(record.value, `v=DKIM1; k=${key.algorithm}; p=${key.publicData}`);
        assert.equal(record.strings.join(''), record.value);
        for (const s of record.strings) assert.ok(Buffer.byteLength(s) <= 255, `a string of ${Buffer.byteLength(s)} octets`);
      }
      assert.equal(value.stdout, records.map((r) => `${r.name}\t${r.value}\n`).join(''));

      assert.match(zone.stdout, /^; pending\n/m);
      assert.match(zone.stdout, /^; active\n/m);
      const zoneFile = join(tempDir(), 'example.com.zone');
      writeFileSync(
        zoneFile,
        [
          '$ORIGIN example.com.',
          '$TTL 3600',
          '@ IN SOA ns1.example.com. hostmaster.example.com. ( 1 7200 3600 1209600 3600 )',
          '@ IN NS ns1.example.com.',
          'ns1 IN A 192.0.2.1',
          zone.stdout,
        ].join('\n'),
      );
      const check = spawnSync('named-checkzone', ['-D', '-o', '-', 'example.com', zoneFile], { encoding: 'utf8' });
      if (check.error) assert.fail(`named-checkzone could not run: ${check.error.message}`);
      assert.equal(check.status, 0, `named-checkzone refused \`keys dns\`:\n${check.stdout}${check.stderr}`);
      for (const record of records) {
        const line = check.stdout.split('\n').find((l) => l.startsWith(`${record.name}.`));
        assert.ok(line, `${record.name} is not in the zone`);
        assert.equal([...line.matchAll(/"([^"]*)"/g)].map((m) => m[1]).join(''), record.value);
      }
    });

    test('keys export: the public key as SPKI PEM, and nothing private', async () => {
      const [rsa, ed] = await Promise.all([
        dkimRelay(['keys', 'export', '--domain', 'example.com', '--selector', rsaSelector], cwd),
        dkimRelay(['keys', 'export', '--domain', 'example.com', '--selector', edSelector], cwd),
      ]);
      for (const [run, selector] of [
        [rsa, rsaSelector],
        [ed, edSelector],
      ] as const) {
        assertSucceeded(run);
        assert.match(run.stdout, /^-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+-----END PUBLIC KEY-----\n$/);
        assert.ok(!run.stdout.includes('PRIVATE'), 'key material in a public export');
        assert.equal(
          spkiBase64(run.stdout),
          spkiBase64(readFileSync(join(store, `${selector}._domainkey.example.com.pem`), 'utf8')),
          `${selector}: not the public half of the key file`,
        );
      }
    });

    test('keys export --private: the PKCS#8 key file, the same key as published', async () => {
      const selector = rsaSelector;
      const run = await dkimRelay(['keys', 'export', '--domain', 'example.com', '--selector', selector, '--private'], cwd);
      assert.equal(run.code, 0, `expected success:\n${shown(run)}`);
      assert.equal(run.stderr, '', `unexpected stderr:\n${shown(run)}`);
      assert.ok(run.stdout.startsWith(PKCS8_HEAD), 'the export is not PKCS#8 PEM');
      assert.ok(run.stdout === readFileSync(join(store, `${selector}._domainkey.example.com.pem`), 'utf8'), 'the export differs from the key file');
      const key = createPrivateKey(run.stdout);
      assert.equal(key.asymmetricKeyDetails?.modulusLength, 2048);
      assert.ok(
        createPublicKey(key).export({ type: 'spki', format: 'der' }).toString('base64') === printedP(rsaRun),
        'the exported key is not the one `keys generate` published',
      );
    });

    test('keys export of a key that does not exist: exit 2, one line naming it and `keys list`', async () => {
      const line = assertUsageError(await dkimRelay(['keys', 'export', '--domain', 'example.com', '--selector', 'nope'], cwd), /no key nope for example\.com/);
      assertMendable(line);
      assert.match(line, /keys list/);
    });

    test('keys export --out onto an existing file: exit 2 with one line, not a stack trace', async () => {
      const out = join(tempDir(), 'exists.pem');
      writeFileSync(out, 'keep me\n');
      const line = assertUsageError(await dkimRelay(['keys', 'export', '--domain', 'example.com', '--selector', rsaSelector, '--out', out], cwd), /exists/);
      assertMendable(line);
      assert.equal(readFileSync(out, 'utf8'), 'keep me\n');
    });
  });

  test('keys import of a PKCS#1 RSA PEM made by node:crypto: stored as PKCS#8 0600, exported back as the same key', async () => {
    const cwd = tempDir();
    const original = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const pkcs1 = original.export({ type: 'pkcs1', format: 'pem' }).toString();
    assert.ok(pkcs1.startsWith(`-----BEGIN RSA ${PRIVATE_ARMOUR}-----`), 'the fixture is not PKCS#1');
    const file = join(cwd, 'legacy.pem');
    writeFileSync(file, pkcs1, { mode: 0o600 });

    const imported = await dkimRelay(['keys', 'import', '--domain', 'Example.ORG', '--selector', 'legacy', '--file', file, '--json'], cwd);
    assertSucceeded(imported);
    const key = JSON.parse(imported.stdout) as ListedKey & { record: JsonRecord };
    assert.deepEqual([key.domain, key.selector, key.algorithm, key.bits, key.state], ['example.org', 'legacy', 'rsa', 2048, 'pending']);
    const spki = createPublicKey(original).export({ type: 'spki', format: 'der' }).toString('base64');
    assert.equal(key.publicData, spki);
    assert.equal(key.record.value, `v=DKIM1; k=rsa; p=${spki}`);
    assert.ok(!imported.stdout.includes(PRIVATE_ARMOUR), 'key material on stdout');

    const stored = join(cwd, 'keys', 'legacy._domainkey.example.org.pem');
    assert.equal(modeOf(stored), '0600');
    assert.ok(readFileSync(stored, 'utf8').startsWith(PKCS8_HEAD), 'the imported key is not stored as PKCS#8');

    const exported = await dkimRelay(['keys', 'export', '--domain', 'example.org', '--selector', 'legacy', '--private'], cwd);
    assert.equal(exported.code, 0, `expected success:\n${shown(exported)}`);
    assert.ok(exported.stdout.startsWith(PKCS8_HEAD), 'the export is not PKCS#8 PEM');
    const same = createPrivateKey(exported.stdout)
      .export({ type: 'pkcs8', format: 'der' })
      .equals(original.export({ type: 'pkcs8', format: 'der' }));
    assert.ok(same, 'the exported key is not the imported one');
  });

  test('an open store (the daemon) sees a key activated by the CLI, without reopening', async () => {
    const cwd = tempDir();
    const daemon = SqliteKeyStore.open(join(cwd, 'keys'));
    try {
      daemon.generate({ domain: 'example.com', selector: 'old', algorithm: 'ed25519', activate: true });
      daemon.generate({ domain: 'example.com', selector: 'new', algorithm: 'ed25519' });
      assert.deepEqual(
        daemon.activeKeys('example.com').map((k) => k.selector),
        ['old'],
      );
      const run = await dkimRelay(['keys', 'activate', '--domain', 'example.com', '--selector', 'new', '--force'], cwd);
      assert.equal(run.code, 0, `expected success:\n${shown(run)}`);
      assert.match(run.stderr, /^warning: DNS check skipped \(--force\)[^\n]*\n$/);
      assert.match(run.stdout, /^example\.com new: ed25519 256 bits, active, /);
      assert.deepEqual(
        daemon.activeKeys('example.com').map((k) => k.selector),
        ['new'],
        'the open store still signs with the old key',
      );
      assert.equal(daemon.get('example.com', 'old').state, 'retiring');
    } finally {
      daemon.close();
    }
  });

  describe('--config with keys.dir, and config check', () => {
    const cwd = tempDir();
    const storeDir = join(tempDir(), 'store');
    const config = join(cwd, 'relay.yaml');
    writeFileSync(
      config,
      [
        'keys:',
        `  dir: ${JSON.stringify(storeDir)}`,
        'listen:',
        '  port: 2587',
        'access:',
        '  users:',
        '    - name: exchange',
        '      password: "scrypt$N=16384,r=8,p=1$notToBePrinted+A$Ing03femZvdnqTpF7iiNrZQ+SV4neJ7/fkHx34G/c74="',
        '',
      ].join('\n'),
    );

    test('keys generate --config puts the key in keys.dir, not in ./keys', async () => {
      const run = await dkimRelay(['--config', config, 'keys', 'generate', '--domain', 'example.net', '--selector', 'cfg', '--algorithm', 'ed25519'], cwd);
      assertSucceeded(run);
      assert.ok(existsSync(join(storeDir, 'cfg._domainkey.example.net.pem')), 'the key is not in keys.dir');
      assert.ok(!existsSync(join(cwd, 'keys')), 'a ./keys store was created despite keys.dir');
      assert.equal(modeOf(storeDir), '0700');
    });

    test('config check prints the effective configuration, defaults included, and hides password hashes', async () => {
      const [yaml, json] = await Promise.all([
        dkimRelay(['config', 'check', '--config', config], cwd),
        dkimRelay(['config', 'check', '--config', config, '--json'], cwd),
      ]);
      assertSucceeded(yaml);
      assertSucceeded(json);
      assert.equal(yaml.stdout.split('\n')[0], `# ${config}: valid`);
      for (const [form, effective] of [
        ['yaml', parseYaml(yaml.stdout)],
        ['json', JSON.parse(json.stdout)],
      ] as const) {
        assert.equal(effective.keys.dir, storeDir, `${form}: keys.dir`);
        assert.equal(effective.listen.port, 2587, `${form}: listen.port as given`);
        assert.equal(effective.listen.host, '127.0.0.1', `${form}: default listen.host`);
        assert.equal(effective.signing.canonicalization, 'relaxed/relaxed', `${form}: default canonicalization`);
        assert.equal(effective.delivery.upstream.type, 'file', `${form}: default upstream`);
        assert.equal(effective.selfCheck.onFailure, 'tempfail', `${form}: default selfCheck.onFailure`);
        assert.deepEqual(effective.access.users, [{ name: 'exchange', password: '[hashed]' }], `${form}: users`);
      }
      assert.ok(!yaml.stdout.includes('notToBePrinted') && !json.stdout.includes('notToBePrinted'), 'config check printed a password hash');
    });

    test('config check without any configuration reports the embedded default', async () => {
      const run = await dkimRelay(['config', 'check'], tempDir());
      assertSucceeded(run);
      assert.equal(run.stdout.split('\n')[0], '# embedded default (no configuration file): valid');
      assert.equal(parseYaml(run.stdout).keys.dir, 'keys');
    });
  });

  describe('usage and configuration errors: exit 2, one line, no stack trace', () => {
    function configFile(text: string): { cwd: string; file: string } {
      const cwd = tempDir();
      const file = join(cwd, 'dkim-relay.yaml');
      writeFileSync(file, text);
      return { cwd, file };
    }

    test('a broken YAML file: the file, line and column', async () => {
      const { cwd, file } = configFile('keys:\n  dir: [keys\nlisten:\n  port: 25\n');
      const line = assertUsageError(await dkimRelay(['config', 'check', '--config', file], cwd), /YAML syntax error at line \d+, column \d+/);
      assertMendable(line);
      assert.ok(line.includes(file), `the line does not name ${file}: ${line}`);
    });

    test('an unknown key stops any command, named in full (keys.dri)', async () => {
      const { cwd, file } = configFile('keys:\n  dri: /var/lib/dkim-relay\n');
      const line = assertUsageError(await dkimRelay(['--config', file, 'keys', 'list'], cwd), /: unknown key keys\.dri — /);
      assertMendable(line);
      assert.ok(!existsSync(join(cwd, 'keys')), 'a store was opened despite the bad configuration');
    });

    test('config check names the exact wrong key, however deep', async () => {
      const deep = configFile('signing:\n  domains:\n    example.com:\n      canonicalisation: relaxed/relaxed\n');
      const value = configFile('listen:\n  port: 99999\n');
      const top = configFile('lisen:\n  port: 25\n');
      const [deepRun, valueRun, topRun] = await Promise.all([
        dkimRelay(['config', 'check', '--config', deep.file], deep.cwd),
        dkimRelay(['config', 'check', '--config', value.file], value.cwd),
        dkimRelay(['config', 'check', '--config', top.file], top.cwd),
      ]);
      assertMendable(assertUsageError(deepRun, /: unknown key signing\.domains\.example\.com\.canonicalisation — /));
      assertMendable(assertUsageError(valueRun, /: listen\.port: .*65535/));
      assertMendable(assertUsageError(topRun, /: unknown key lisen — /));
    });

    test('a configuration file that does not exist', async () => {
      const cwd = tempDir();
      const line = assertUsageError(await dkimRelay(['--config', 'absent.yaml', 'keys', 'list'], cwd), /configuration file absent\.yaml does not exist/);
      assertMendable(line);
    });

    test('keys generate --bits 512: refused, and no key is stored', async () => {
      const cwd = tempDir();
      const line = assertUsageError(await dkimRelay(['keys', 'generate', '--domain', 'example.com', '--bits', '512'], cwd), /512 bits/);
      assertMendable(line);
      assert.match(line, /--bits 1024, 2048, 3072, 4096/);
      const files = existsSync(join(cwd, 'keys')) ? readdirSync(join(cwd, 'keys')).filter((f) => f.endsWith('.pem')) : [];
      assert.deepEqual(files, [], 'a refused key left a file behind');
    });

    test('an unknown command, at the top and under keys', async () => {
      const cwd = tempDir();
      const [top, sub] = await Promise.all([dkimRelay(['frobnicate'], cwd), dkimRelay(['keys', 'frobnicate', '--domain', 'example.com'], cwd)]);
      assert.match(assertUsageError(top, /frobnicate/), /--help/);
      assert.match(assertUsageError(sub, /frobnicate/), /--help/);
    });
  });
});
