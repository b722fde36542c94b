// `config check` refuses every file that `serve` refuses, one line each
// naming the key at fault, through the real CLI with real files and certificates.
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { dkimRelay, ROOT } from '../cli/support.ts';
import { selfSignedCert } from '../helpers/relay-harness.ts';
import { tempDir } from '../helpers/tmp.ts';

const dir = tempDir();
let tls: { key: string; cert: string };
let other: { key: string; cert: string };

before(() => {
  tls = selfSignedCert(dir);
  mkdirSync(join(dir, 'other'));
  other = selfSignedCert(join(dir, 'other'));
  writeFileSync(join(dir, 'combined.pem'), readFileSync(tls.cert).toString() + readFileSync(tls.key).toString());
});

async function check(yaml: string, command = ['config', 'check']) {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, yaml);
  return { ...(await dkimRelay([...command, '--config', file], dir)), file };
}

/** Exit 2 and exactly one line on stderr: "<file>: <key>: <what> — <how to mend>". */
async function refused(yaml: string, key: string, what: RegExp, command?: string[]) {
  const run = await check(yaml, command);
  assert.equal(run.code, 2, `${yaml}\n${run.stdout}${run.stderr}`);
  assert.equal(run.stdout, '');
  const lines = run.stderr.split('\n');
  assert.equal(lines.length, 2, `one line expected:\n${run.stderr}`);
  const prefix = `dkim-relay: ${run.file}: ${key}: `;
  assert.ok(lines[0]!.startsWith(prefix), `expected ${prefix}…, got ${lines[0]}`);
  assert.match(lines[0]!.slice(prefix.length), what);
  assert.match(lines[0]!, / — \S/, 'says how to mend it');
  assert.doesNotMatch(run.stderr, /PRIVATE KEY-----\n|^\s+at /m);
}

describe('values of the wrong kind, said with the key, what it must be and what the file holds', () => {
  test('text where a number goes', () => refused('listen: {port: twenty-five}\n', 'listen.port', /^must be a number, not "twenty-five" — /));
  test('a number out of range', () => refused('listen: {port: 99999}\n', 'listen.port', /^must be at most 65535, not 99999 — /));
  test('a word that is not one of the choices', () =>
    refused('log: {level: loud}\n', 'log.level', /^"loud" is not one of fatal, error, warn, info, debug, trace, silent — /));
  test('a required key left out', () => refused('delivery: {upstream: {type: smtp}}\n', 'delivery.upstream.host is missing', /^it must be text — /));
  test('a single value where a list goes', () => refused('access: {networks: 10.0.0.0/8}\n', 'access.networks', /^must be a list, not "10\.0\.0\.0\/8" — /));
  test('more than one problem: the first, and how many follow', async () => {
    const run = await check('listen: {prot: 25}\nlog: {level: loud}\n');
    assert.equal(run.code, 2);
    assert.equal(
      run.stderr,
      `dkim-relay: ${run.file}: unknown key listen.prot (and 1 more problem after it) — see config/dkim-relay.example.yaml for every key\n`,
    );
  });
});

describe('TLS files', () => {
  test('listen.tlsPort without listen.tls', () => refused('listen: {tlsPort: 0}\n', 'listen.tlsPort', /needs listen\.tls/));

  test('listen.tlsPort the same as listen.port', () =>
    refused(`listen: {port: 2525, tlsPort: 2525, tls: {key: ${tls.key}, cert: ${tls.cert}}}\n`, 'listen.tlsPort', /one port cannot take both/));

  test('a certificate file that does not exist', () =>
    refused(`listen: {tls: {key: ${tls.key}, cert: ${join(dir, 'missing.crt')}}}\n`, 'listen.tls.cert', /missing\.crt does not exist/));

  test('a key file that does not exist', () =>
    refused(`listen: {tls: {key: missing.key, cert: ${tls.cert}}}\n`, 'listen.tls.key', /missing\.key does not exist/));

  test('a key "file" that cannot be read (a directory)', () =>
    refused(`listen: {tls: {key: ${join(dir, 'other')}, cert: ${tls.cert}}}\n`, 'listen.tls.key', /is a directory/));

  test('a key file that holds a certificate', () =>
    refused(`listen: {tls: {key: ${tls.cert}, cert: ${tls.cert}}}\n`, 'listen.tls.key', /holds no usable private key/));

  test('a certificate file that holds the private key (key and cert swapped)', () =>
    refused(`listen: {tls: {key: ${tls.key}, cert: ${tls.key}}}\n`, 'listen.tls.cert', /tls\.key holds a private key/));

  test('a certificate file that holds the certificate and the private key', () =>
    refused(`listen: {tls: {key: ${tls.key}, cert: combined.pem}}\n`, 'listen.tls.cert', /combined\.pem holds a private key/));

  test('a certificate that does not match the key', () =>
    refused(`listen: {tls: {key: ${tls.key}, cert: ${other.cert}}}\n`, 'listen.tls.cert', /does not match the key/));

  test('serve refuses the swapped files the same way, without a stack trace (exit 2, not 70)', () =>
    refused(
      `listen: {port: 0, tls: {key: ${tls.key}, cert: ${tls.key}}, tlsPort: 0}\nkeys: {dir: ${join(dir, 'keys')}}\n`,
      'listen.tls.cert',
      /holds a private key/,
      ['serve'],
    ));

  test('a key and its certificate with tlsPort are valid', async () => {
    const run = await check(`listen: {tls: {key: ${tls.key}, cert: ${tls.cert}}, tlsPort: 0}\n`);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /: valid\n/);
  });
});

describe('clients with keys of their own', () => {
  test('keys: own without a name', () => refused('clients: [{user: scan, domains: [example.com], keys: own}]\n', 'clients.0.name', /keys: own needs a name/));
  test('a name that cannot start a selector', () =>
    refused('clients: [{user: scan, domains: [example.com], name: Scanner_1, keys: own}]\n', 'clients.0.name', /"Scanner_1" is not a usable client name/));
  test('two clients of one name', () =>
    refused(
      'clients: [{user: a, domains: [example.com], name: scanner, keys: own}, {user: b, domains: [example.com], name: scanner}]\n',
      'clients.1.name',
      /the name scanner is taken by clients\.0/,
    ));
  test('one user with two chains', () =>
    refused(
      'clients: [{user: a, domains: [example.com], name: one, keys: own}, {user: a, domains: [example.org], name: two, keys: own}]\n',
      'clients.1.user',
      /user a already has keys of its own in clients\.0/,
    ));
  test('whenNoKey without keys: own', () =>
    refused('clients: [{user: a, domains: [example.com], whenNoKey: domain}]\n', 'clients.0.whenNoKey', /applies to a client with keys: own only/));
  test('two clients with chains of their own are valid', async () => {
    const run = await check(
      'clients: [{user: scan, domains: [example.com], name: scanner, keys: own}, {networks: [10.1.0.0/16], domains: [example.com], name: crm, keys: own, whenNoKey: domain}]\n',
    );
    assert.equal(run.code, 0, run.stderr);
  });
});

describe('networks and domain names', () => {
  test('access.networks: not an address', () =>
    refused('access: {networks: [192.0.2.300]}\n', 'access.networks.0', /"192\.0\.2\.300" is not an IP address or CIDR range/));
  test('access.networks: a prefix too long', () => refused('access: {networks: [127.0.0.0/8, "10.0.0.0/33"]}\n', 'access.networks.1', /"10\.0\.0\.0\/33"/));
  test('access.networks: a shortened IPv4 address that would admit another network', () =>
    refused('access: {networks: [10.1/16]}\n', 'access.networks.0', /"10\.1\/16"/));
  test('clients[].networks', () =>
    refused('clients: [{networks: [printers], domains: [example.com]}]\n', 'clients.0.networks.0', /"printers" is not an IP address/));
  test('clients[].domains', () =>
    refused('clients: [{user: scan, domains: [example.com, "exa mple.com"]}]\n', 'clients.0.domains.1', /"exa mple\.com" is not a valid domain name/));
  test('signing.domains keys', () =>
    refused('signing: {domains: {"example": {canonicalization: relaxed}}}\n', 'signing.domains.example', /is not a valid domain name/));
  test('signing.domains keys in upper case never match the d= domain', () =>
    refused('signing: {domains: {Example.ORG: {}}}\n', 'signing.domains.Example.ORG', /never matches/));
  test('demo.domain', () => refused('demo: {domain: "example..com"}\n', 'demo.domain', /is not a valid domain name/));
  test('listen.hostname and the smart host EHLO name: fully-qualified host names', async () => {
    await refused('listen: {hostname: "bad host name!"}\n', 'listen.hostname', /^"bad host name!" is not a fully-qualified host name — write the name/);
    await refused(
      'delivery: {upstream: {type: smtp, host: smtp.example.com, name: relay}}\n',
      'delivery.upstream.name',
      /^"relay" is not a fully-qualified host name/,
    );
  });

  test('valid addresses, ranges and domains pass', async () => {
    const run = await check(
      'access: {networks: [192.0.2.10, 10.1.0.0/16, "2001:db8::/32", "::1"]}\nclients: [{networks: [10.20.0.0/24], domains: [scan.example.com, bücher.example]}]\nsigning: {domains: {example.org: {canonicalization: relaxed/simple}}}\ndemo: {domain: example.com}\n',
    );
    assert.equal(run.code, 0, run.stderr);
  });
});

describe('access.users password hashes', () => {
  test("README's placeholder is refused: no password could ever match it", async () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const placeholder = /password: ("scrypt\$[^"]*")/.exec(readme)![1]!;
    await refused(`access:\n  users:\n    - name: exchange\n      password: ${placeholder}\n`, 'access.users.0.password', /no password can match it/);
  });

  test('a truncated hash is refused', () =>
    refused(
      'access: {users: [{name: a, password: "scrypt$N=16384,r=8,p=1$omDzGRnLm1VjseJestGqzQ==$Ing03femZvdnqTpF7iiNrZQ"}]}\n',
      'access.users.0.password',
      /not a complete hash/,
    ));

  test('a cost that is not a power of two is refused', () =>
    refused(
      'access: {users: [{name: a, password: "scrypt$N=1000,r=8,p=1$omDzGRnLm1VjseJestGqzQ==$Ing03femZvdnqTpF7iiNrZQ+SV4neJ7/fkHx34G/c74="}]}\n',
      'access.users.0.password',
      /not a complete hash/,
    ));

  test('the example configuration, with its example user, is valid', async () => {
    const example = readFileSync(join(ROOT, 'config', 'dkim-relay.example.yaml'), 'utf8');
    const withUser = example.replace('  users: []\n  # users:\n  #   - name: exchange\n  #     password:', '  users:\n    - name: exchange\n      password:');
    assert.notEqual(withUser, example, 'the example user block moved');
    const run = await check(withUser.replace('dir: keys', `dir: ${join(dir, 'keys')}`));
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /name: exchange\n\s+password: "?\[hashed\]/);
  });
});

describe("a shared key store's secret files, read before the database is asked", () => {
  const store = (files: string) => `keys: {dir: ${join(dir, 'keys')}, database: "postgresql://relay@127.0.0.1:1/dkim", ${files}}\n`;
  const secret = (name: string, text: string, mode = 0o600) => {
    const file = join(dir, name);
    writeFileSync(file, text);
    chmodSync(file, mode);
    return file;
  };
  let kek: string;
  before(() => {
    kek = secret('kek', `${Buffer.alloc(32, 9).toString('base64')}\n`);
  });

  for (const command of [['config', 'check'], ['serve']]) {
    test(`${command.join(' ')}: a database password file that does not exist`, () =>
      refused(
        store(`passwordFile: ${join(dir, 'no-such.pass')}, encryptionKeyFile: ${kek}`),
        'keys.passwordFile',
        /the database password file \S+no-such\.pass does not exist/,
        command,
      ));
    test(`${command.join(' ')}: an encryption key file others can read`, () =>
      refused(
        store(`encryptionKeyFile: ${secret('kek-open', `${Buffer.alloc(32, 9).toString('base64')}\n`, 0o644)}`),
        'keys.encryptionKeyFile',
        /the encryption key file \S+kek-open is readable by others \(mode 0644\)/,
        command,
      ));
  }

  test('an encryption key file that does not hold 32 bytes', () =>
    refused(store(`encryptionKeyFile: ${secret('kek-short', 'c2hvcnQ=\n')}`), 'keys.encryptionKeyFile', /does not hold 32 bytes in base64/));

  test('usable files pass (the database itself is not asked)', async () => {
    const run = await check(store(`passwordFile: ${secret('db.pass', 'pw\n')}, encryptionKeyFile: ${kek}`));
    assert.equal(run.code, 0, run.stderr);
    assert.doesNotMatch(run.stdout, /CQkJ/, 'the encryption key is not printed');
  });
});

describe('smart-host AUTH', () => {
  const upstream =
    'delivery:\n  upstream:\n    type: smtp\n    host: smtp.provider.example\n    port: 587\n    auth: {user: relay@example.com, pass: secret}\n';

  test('is refused without secure or requireTLS', () => refused(upstream, 'delivery.upstream.auth', /password would go out without TLS/));

  for (const extra of ['requireTLS: true', 'secure: true', 'allowInsecureAuth: true']) {
    test(`is accepted with ${extra}`, async () => {
      const run = await check(`${upstream}    ${extra}\n`);
      assert.equal(run.code, 0, run.stderr);
      assert.doesNotMatch(run.stdout, /secret/);
    });
  }
});

test('the example configuration as shipped is valid', async () => {
  copyFileSync(join(ROOT, 'config', 'dkim-relay.example.yaml'), join(dir, 'example.yaml'));
  const run = await dkimRelay(['config', 'check', '--config', 'example.yaml'], dir);
  assert.equal(run.code, 0, run.stderr);
});

test('settings that work but probably not as meant: config check notes them on stderr and exits 0', async () => {
  const run = await check('rotation: {check: "0 3 * * *", publishFor: 1h}\n');
  assert.equal(run.code, 0, run.stderr);
  assert.match(
    run.stderr,
    /^dkim-relay: note: rotation\.publishFor \(1h\) is shorter than the time between two checks of rotation\.check "0 3 \* \* \*" \(86400s\): new keys will wait for the next check$/m,
  );
  assert.match(run.stdout, /: valid\n/, 'the configuration is printed as before');
  const quiet = await check('rotation: {check: "*/5 * * * *", publishFor: 1h}\n');
  assert.equal(quiet.stderr, '', 'nothing to note');
});

test('access.networks wider than any organisation: config check notes an open relay, and exits 0', async () => {
  const run = await check('access: {networks: [127.0.0.1, 0.0.0.0/0, "::/0", 10.0.0.0/8, 64.0.0.0/2, "fc00::/7"]}\n');
  assert.equal(run.code, 0, run.stderr);
  const notes = run.stderr.trimEnd().split('\n');
  assert.deepEqual(
    notes.map((n) => /^dkim-relay: note: access\.networks holds (\S+), (.*?): whoever reaches the listener relays without a login/.exec(n)?.slice(1)),
    [
      ['0.0.0.0/0', 'every IPv4 address'],
      ['::/0', 'every IPv6 address'],
      ['64.0.0.0/2', '1/4 of all IPv4 addresses'],
    ],
  );
  assert.match(notes[0]!, /\(an open relay\); list your own networks, and let other clients log in \(access\.users\)$/);
  const quiet = await check('access: {networks: [10.0.0.0/8, 192.168.0.0/16, "fc00::/7", "2001:db8::/32"]}\n');
  assert.equal(quiet.stderr, '', 'private and organisation-sized ranges are no news');
});
