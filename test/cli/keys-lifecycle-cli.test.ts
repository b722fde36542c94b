// The keys commands through the real binary, where they meet DNS and each
// other: DNS that refuses, fails or never answers; what activate, retire,
// list and dns say, and on which stream; --json everywhere a result is printed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts';
import { tempDir } from '../helpers/tmp.ts';
import { PRIVATE_ARMOUR, redact } from '../keys/support.ts';
import { BIN, CLI_TIMEOUT_MS, dkimRelay, NODE, type Run } from './support.ts';

function shown(run: Run): string {
  return `exit ${run.code}\n--- stdout\n${redact(run.stdout).slice(0, 3000)}\n--- stderr\n${redact(run.stderr).slice(0, 3000)}`;
}

/** Exit `code`, nothing on stdout, one "dkim-relay: …" line on stderr and no stack trace; returns the line. */
function assertOneLine(run: Run, code: number, what: RegExp): string {
  assert.equal(run.code, code, `expected exit ${code}:\n${shown(run)}`);
  assert.equal(run.stdout, '', `stdout should be empty:\n${shown(run)}`);
  const lines = run.stderr.replace(/\n$/, '').split('\n');
  assert.equal(lines.length, 1, `expected one stderr line:\n${shown(run)}`);
  assert.match(lines[0]!, /^dkim-relay: /);
  assert.doesNotMatch(run.stderr, /\bat .*:\d+:\d+|Error:|\.ts:\d+|unexpected error/, `a stack trace:\n${shown(run)}`);
  assert.match(lines[0]!, what);
  return lines[0]!;
}

function assertOk(run: Run): void {
  assert.equal(run.code, 0, `expected success:\n${shown(run)}`);
  assert.ok(!run.stdout.includes(PRIVATE_ARMOUR) && !run.stderr.includes(PRIVATE_ARMOUR), 'key material in the output');
}

/** stderr holds exactly these warnings, one line each, and nothing else. */
function assertWarnings(run: Run, ...expected: RegExp[]): void {
  const lines = run.stderr === '' ? [] : run.stderr.replace(/\n$/, '').split('\n');
  assert.equal(lines.length, expected.length, `expected ${expected.length} warning line(s):\n${shown(run)}`);
  expected.forEach((re, i) => {
    assert.match(lines[i]!, /^warning: /);
    assert.match(lines[i]!, re);
  });
}

function json<T = Record<string, unknown>>(run: Run): T {
  assertOk(run);
  try {
    return JSON.parse(run.stdout) as T;
  } catch {
    assert.fail(`stdout is not JSON:\n${shown(run)}`);
  }
}

/** The CLI with `input` on stdin (sign, verify). */
function withInput(args: string[], cwd: string, input: string | Buffer): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      NODE,
      [BIN, ...args],
      { cwd, env: { PATH: process.env.PATH, LANG: 'C.UTF-8' }, encoding: 'utf8', timeout: CLI_TIMEOUT_MS },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') return reject(err);
        resolve({ code: child.exitCode, stdout, stderr });
      },
    );
    child.stdin!.end(input);
  });
}

interface Key {
  domain: string;
  selector: string;
  algorithm: string;
  bits: number;
  state: string;
  record: { name: string; strings: string[] };
  [field: string]: unknown;
}

describe('keys commands meeting DNS and each other', { concurrency: 4 }, () => {
  let dns: DnsServer;
  before(async () => {
    dns = await startDnsServer();
    const warm = await dkimRelay(['--version'], tempDir());
    assert.equal(warm.code, 0, shown(warm));
  });
  after(() => dns.close());

  /** A server of its own for each misbehaviour, so tests running side by side do not change each other's. */
  async function brokenDns(mode: DnsServer['mode']): Promise<DnsServer> {
    const server = await startDnsServer();
    server.mode = mode;
    return server;
  }

  async function pendingKey(cwd: string, domain: string, selector: string, ...more: string[]): Promise<Key> {
    return json<Key>(await dkimRelay(['keys', 'generate', '--domain', domain, '--selector', selector, '--json', ...more], cwd));
  }

  for (const [mode, why] of [
    ['refuse', /the query was refused/],
    ['servfail', /server failure \(SERVFAIL\)/],
    ['silent', /timed out after \d+ s/],
  ] as const) {
    test(`keys activate when DNS ${mode === 'silent' ? 'never answers' : `answers ${mode}`}: one line, exit 1, the key stays pending`, async () => {
      const cwd = tempDir();
      const server = await brokenDns(mode);
      try {
        await pendingKey(cwd, 'example.org', 'sel1', '--algorithm', 'ed25519');
        const run = await dkimRelay(['keys', 'activate', '--domain', 'example.org', '--selector', 'sel1', '--nameserver', server.address], cwd);
        const line = assertOneLine(
          run,
          1,
          new RegExp(`DNS lookup of sel1\\._domainkey\\.example\\.org failed: ${why.source} at ${server.address.replace(/\./g, '\\.')} — `),
        );
        assert.match(line, /--force/);
      } finally {
        await server.close();
      }
      const listed = json<Key[]>(await dkimRelay(['keys', 'list', '--json'], cwd));
      assert.equal(listed[0]!.state, 'pending');
    });
  }

  test('keys activate when nothing listens at the nameserver: connection refused, exit 1', async () => {
    const cwd = tempDir();
    // A port that was just free and is closed again: the kernel answers with "port unreachable".
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    const address = `127.0.0.1:${socket.address().port}`;
    await new Promise<void>((resolve) => socket.close(() => resolve()));
    await pendingKey(cwd, 'example.org', 'sel1', '--algorithm', 'ed25519');
    const run = await dkimRelay(['keys', 'activate', '--domain', 'example.org', '--selector', 'sel1', '--nameserver', address], cwd);
    assertOneLine(run, 1, /DNS lookup of sel1\._domainkey\.example\.org failed: (connection refused|timed out after \d+ s) at 127\.0\.0\.1:\d+ — /);
  });

  test('--nameserver that is no IP address: a usage error in one line, for activate and verify --dns', async () => {
    const cwd = tempDir();
    await pendingKey(cwd, 'example.org', 'sel1', '--algorithm', 'ed25519');
    const [activate, verify, port] = await Promise.all([
      dkimRelay(['keys', 'activate', '--domain', 'example.org', '--selector', 'sel1', '--nameserver', 'bogus'], cwd),
      withInput(['verify', '--dns', '--nameserver', 'bogus'], cwd, 'From: a@example.org\r\n\r\nx\r\n'),
      dkimRelay(['keys', 'activate', '--domain', 'example.org', '--selector', 'sel1', '--force', '--nameserver', '127.0.0.1:99999'], cwd),
    ]);
    for (const [run, input] of [
      [activate, 'bogus'],
      [verify, 'bogus'],
      [port, '127.0.0.1:99999'],
    ] as const) {
      assertOneLine(
        run,
        2,
        new RegExp(`--nameserver "${input.replace(/\./g, '\\.')}" is not an IP address with an optional port — give e\\.g\\. --nameserver 192\\.0\\.2\\.53`),
      );
    }
    assert.equal(json<Key[]>(await dkimRelay(['keys', 'list', '--json'], cwd))[0]!.state, 'pending', '--force with a bad --nameserver activated the key');
  });

  test('verify --dns --nameserver takes the key from that nameserver', async () => {
    const cwd = tempDir();
    const key = await pendingKey(cwd, 'example.org', 'vdns', '--algorithm', 'ed25519', '--activate');
    const signed = await withInput(['sign'], cwd, 'From: <a@example.org>\r\nTo: <b@example.net>\r\nSubject: hi\r\n\r\nhello\r\n');
    assert.equal(signed.code, 0, shown(signed));
    const server = await startDnsServer(new Map([[key.record.name, [key.record.strings]]]));
    try {
      const pass = await withInput(['verify', '--dns', '--nameserver', server.address], cwd, signed.stdout);
      assertOk(pass);
      assert.equal(pass.stdout, 'pass d=example.org s=vdns a=ed25519-sha256 aligned with From: example.org\n');
      server.records.clear(); // DNS now says NXDOMAIN: the signature cannot pass
      const missing = await withInput(['verify', '--dns', '--nameserver', server.address], cwd, signed.stdout);
      assert.equal(missing.code, 1, shown(missing));
      assert.match(missing.stdout, /^(fail|permerror|temperror|neutral|policy) d=example\.org s=vdns /);
    } finally {
      await server.close();
    }
  });

  test('keys activate names the key it retires, prints nothing on stderr after a DNS check, and reports both under --json', async () => {
    const cwd = tempDir();
    await pendingKey(cwd, 'example.com', 'old', '--bits', '1024', '--activate');
    const next = await pendingKey(cwd, 'example.com', 'new', '--bits', '1024');
    dns.records.set(next.record.name, [next.record.strings]);
    const run = await dkimRelay(['keys', 'activate', '--domain', 'example.com', '--selector', 'new', '--nameserver', dns.address], cwd);
    assertOk(run);
    assert.equal(run.stderr, '', shown(run));
    assert.match(run.stdout, /^example\.com new: rsa 1024 bits, active, /);
    assert.match(run.stdout, /^old is now retiring: it no longer signs; keep its record published for mail in flight, then revoke it$/m);

    const third = await pendingKey(cwd, 'example.com', 'third', '--bits', '1024');
    dns.records.set(third.record.name, [third.record.strings]);
    const out = json<Key & { dnsCheck: string; retired: Key[] }>(
      await dkimRelay(['keys', 'activate', '--domain', 'example.com', '--selector', 'third', '--nameserver', dns.address, '--json'], cwd),
    );
    assert.equal(out.state, 'active');
    assert.equal(out.dnsCheck, 'match');
    assert.deepEqual(
      out.retired.map((k) => [k.selector, k.state]),
      [['new', 'retiring']],
    );
  });

  test('keys activate after its DNS check says DNS serves the record instead of asking to publish it; --force still shows the record', async () => {
    const cwd = tempDir();
    const key = await pendingKey(cwd, 'example.com', 'checked', '--bits', '1024');
    dns.records.set(key.record.name, [key.record.strings]);
    const run = await dkimRelay(['keys', 'activate', '--domain', 'example.com', '--selector', 'checked', '--nameserver', dns.address], cwd);
    assertOk(run);
    assert.doesNotMatch(run.stdout, /Publish this record/, shown(run));
    assert.match(run.stdout, /^example\.com checked: rsa 1024 bits, active, \S+\nDNS serves its record checked\._domainkey\.example\.com\n$/);

    await pendingKey(cwd, 'example.com', 'forced', '--bits', '1024');
    const forced = await dkimRelay(['keys', 'activate', '--domain', 'example.com', '--selector', 'forced', '--force'], cwd);
    assert.match(forced.stdout, /^Publish this record:\nforced\._domainkey\.example\.com\. /m, shown(forced));
  });

  test('keys activate --force says on stderr that the DNS check was skipped; --json keeps stdout pure JSON', async () => {
    const cwd = tempDir();
    await pendingKey(cwd, 'example.com', 'e1', '--algorithm', 'ed25519', '--activate');
    await pendingKey(cwd, 'example.com', 'e2', '--algorithm', 'ed25519');
    const run = await dkimRelay(['keys', 'activate', '--domain', 'example.com', '--selector', 'e2', '--force', '--json'], cwd);
    const out = json<Key & { dnsCheck: string; retired: Key[] }>(run);
    assert.equal(out.dnsCheck, 'skipped');
    assert.deepEqual(
      out.retired.map((k) => k.selector),
      ['e1'],
    );
    assertWarnings(
      run,
      /^warning: DNS check skipped \(--force\): receivers fail DKIM on mail signed with e2 until e2\._domainkey\.example\.com serves its record$/,
    );
  });

  test('activating an RSA-1024 key over an RSA-2048 one warns that the new key is weaker', async () => {
    const cwd = tempDir();
    await pendingKey(cwd, 'example.com', 'strong', '--bits', '2048', '--activate');
    await pendingKey(cwd, 'example.com', 'weak', '--bits', '1024');
    const run = await dkimRelay(['keys', 'activate', '--domain', 'example.com', '--selector', 'weak', '--force'], cwd);
    assertOk(run);
    assertWarnings(run, /DNS check skipped/, /^warning: weak \(rsa 1024 bits\) replaces strong \(rsa 2048 bits\), a stronger key/);
    assert.match(run.stdout, /^strong is now retiring/m);
  });

  test("keys retire of the last active key says what now happens to the domain's mail, as configured", async () => {
    const cwd = tempDir();
    const config = join(cwd, 'tempfail.yaml');
    writeFileSync(config, 'signing:\n  unknownDomain: tempfail\n');
    await pendingKey(cwd, 'example.com', 'r1', '--bits', '1024', '--activate');
    await pendingKey(cwd, 'example.com', 'e1', '--algorithm', 'ed25519', '--activate');
    await pendingKey(cwd, 'example.net', 'n1', '--algorithm', 'ed25519', '--activate');
    await pendingKey(cwd, 'mail.example.com', 'm1', '--algorithm', 'ed25519', '--activate');

    const rsaGone = await dkimRelay(['keys', 'retire', '--domain', 'example.com', '--selector', 'r1'], cwd);
    assertOk(rsaGone);
    // A retiring key's record stays where it is: nothing new to publish.
    assert.match(rsaGone.stdout, /^Keep this record published \(mail the key signed is still being verified\):\nr1\._domainkey\.example\.com\. /m);
    const again = await dkimRelay(['keys', 'retire', '--domain', 'example.com', '--selector', 'r1'], cwd);
    assertOk(again);
    assert.match(
      again.stderr,
      /^warning: r1 of example\.com was already retiring \(since 20\d\d-.*\): nothing changed$/m,
      'a second retire changes nothing, and says so',
    );
    assertWarnings(
      rsaGone,
      /^warning: example\.com now signs with Ed25519 only; receivers that do not know Ed25519 see its mail as unsigned — activate an RSA key$/,
    );
    const sub = await dkimRelay(['keys', 'retire', '--domain', 'mail.example.com', '--selector', 'm1'], cwd);
    assertWarnings(sub, /^warning: mail\.example\.com has no active key left: its mail is now signed by example\.com$/);
    const last = await dkimRelay(['keys', 'retire', '--domain', 'example.com', '--selector', 'e1', '--json'], cwd);
    assert.equal(json<Key>(last).state, 'retiring');
    assertWarnings(
      last,
      /^warning: example\.com has no active key left: its mail now leaves unsigned \(signing\.unknownDomain: forward\) — activate another key/,
    );
    const deferred = await dkimRelay(['--config', config, 'keys', 'retire', '--domain', 'example.net', '--selector', 'n1'], cwd);
    assertOk(deferred);
    assert.match(deferred.stdout, /^example\.net n1: ed25519 256 bits, retiring, /);
    assertWarnings(
      deferred,
      /^warning: example\.net has no active key left: its mail is now deferred \(451\) until a key is active \(signing\.unknownDomain: tempfail\)/,
    );
  });

  test('keys list and keys dns for a domain without keys say so; dns fails with exit 1', async () => {
    const cwd = tempDir();
    await pendingKey(cwd, 'example.com', 'e1', '--algorithm', 'ed25519');
    const [list, listJson, dnsZone, dnsJson] = await Promise.all([
      dkimRelay(['keys', 'list', '--domain', 'Unknown.Example'], cwd),
      dkimRelay(['keys', 'list', '--domain', 'unknown.example', '--json'], cwd),
      dkimRelay(['keys', 'dns', '--domain', 'unknown.example'], cwd),
      dkimRelay(['keys', 'dns', '--domain', 'unknown.example', '--json'], cwd),
    ]);
    assertOk(list);
    assert.equal(list.stdout, 'no keys for unknown.example — generate one: dkim-relay keys generate --domain unknown.example\n');
    assert.equal(list.stderr, '');
    assert.deepEqual(json(listJson), []);
    for (const run of [dnsZone, dnsJson])
      assertOneLine(run, 1, /^dkim-relay: no keys for unknown\.example — generate one: dkim-relay keys generate --domain unknown\.example$/);
  });

  test('keys generate --algorithm ed25519 --bits N is a usage error, and stores nothing', async () => {
    const cwd = tempDir();
    const run = await dkimRelay(['keys', 'generate', '--domain', 'example.com', '--algorithm', 'ed25519', '--bits', '2048'], cwd);
    assertOneLine(run, 2, /^dkim-relay: --bits applies to RSA keys only — Ed25519 keys are always 256 bits: leave out --bits$/);
    const keys = join(cwd, 'keys');
    assert.deepEqual(existsSync(keys) ? readdirSync(keys).filter((f) => f.endsWith('.pem')) : [], []);
  });

  test('--json is honoured by every keys command that reports, and refused by export', async () => {
    const cwd = tempDir();
    const big = await dkimRelay(['keys', 'generate', '--domain', 'example.com', '--selector', 'big', '--bits', '3072', '--json'], cwd);
    assert.equal(json<Key>(big).bits, 3072);
    assertWarnings(big, /records of keys over 2048 bits may not fit a UDP DNS answer/);
    await pendingKey(cwd, 'example.com', 'j1', '--algorithm', 'ed25519');
    const exported = await dkimRelay(['keys', 'export', '--domain', 'example.com', '--selector', 'j1', '--private', '--out', join(cwd, 'k.pem')], cwd);
    assertOk(exported);

    const imported = json<Key>(
      await dkimRelay(['keys', 'import', '--domain', 'example.net', '--selector', 'imp', '--file', join(cwd, 'k.pem'), '--json'], cwd),
    );
    assert.deepEqual([imported.domain, imported.selector, imported.state], ['example.net', 'imp', 'pending']);
    const activated = json<Key>(await dkimRelay(['keys', 'activate', '--domain', 'example.com', '--selector', 'j1', '--force', '--json'], cwd));
    assert.equal(activated.state, 'active');
    const retired = json<Key>(await dkimRelay(['keys', 'retire', '--domain', 'example.com', '--selector', 'j1', '--json'], cwd));
    assert.equal(retired.state, 'retiring');
    const revoked = json<Key>(await dkimRelay(['keys', 'revoke', '--domain', 'example.com', '--selector', 'j1', '--json'], cwd));
    assert.equal(revoked.state, 'revoked');
    assert.equal(json<Key[]>(await dkimRelay(['keys', 'list', '--json'], cwd)).length, 3);
    assert.equal(json<unknown[]>(await dkimRelay(['keys', 'dns', '--json'], cwd)).length, 3);

    const refused = await dkimRelay(['keys', 'export', '--domain', 'example.com', '--selector', 'j1', '--json'], cwd);
    assertOneLine(refused, 2, /^dkim-relay: keys export prints PEM, not JSON — leave out --json/);
  });
});
