// `dkim-relay dns check`, the real CLI, against what real authoritative DNS
// servers (Knot DNS on loopback) serve: each status and lint finding, SPF and
// DMARC readiness, two servers that disagree, a server that does not answer,
// and the exit status promised for each.
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { generateKey } from '../../src/keys/key-material.ts';
import { splitValue, txtValue } from '../../src/keys/record.ts';
import { SqliteKeyStore, type StoredKey } from '../../src/keys/store.ts';
import { startKnot, type Knot } from '../helpers/knot.ts';
import { tempDir } from '../helpers/tmp.ts';
import { dkimRelay, type Run } from '../cli/support.ts';
import { skipWithout } from '../helpers/tools.ts';

interface JsonReport {
  ok: boolean;
  domains: {
    domain: string;
    servers: string[];
    keys: {
      selector: string;
      state: string;
      status: string;
      disagreement: string | null;
      servers: {
        server: string;
        status: string;
        transport?: string;
        ttl?: number;
        chain?: string[];
        findings: { level: string; code: string; message: string; fix?: string }[];
      }[];
    }[];
    readiness: { server: string; spf?: string | null; dmarc?: string | null; findings?: { code: string; message: string; fix?: string }[]; temperror?: string };
  }[];
}

const quoted = (strings: string[]) => strings.map((s) => `"${s}"`).join(' ');
const soa = (origin: string) => `$ORIGIN ${origin}.\n$TTL 3600\n@ SOA ns1.a.test. hostmaster.a.test. 1 3600 600 86400 300\n@ NS ns1.a.test.\n`;

function shown(run: Run): string {
  return `exit ${run.code}\n--- stdout\n${run.stdout.slice(0, 6000)}\n--- stderr\n${run.stderr.slice(0, 2000)}`;
}

describe('dkim-relay dns check against knotd', { skip: skipWithout('knotd', 'knotc') }, () => {
  const dir = tempDir('dkim-relay-dnscheck-');
  const keysDir = join(dir, 'keys');
  const config = join(dir, 'dkim-relay.yaml');
  let knot: Knot;
  let knot2: Knot;
  let silent: Socket;
  let silentAddress: string;
  const keys = new Map<string, StoredKey>();

  before(async () => {
    const store = SqliteKeyStore.open(keysDir);
    const add = (domain: string, selector: string, algorithm: 'rsa' | 'ed25519', bits?: number) => {
      const key = store.generate({ domain, selector, algorithm, bits });
      keys.set(`${selector}.${domain}`, key);
      return key;
    };
    const good = add('a.test', 'good', 'rsa', 2048);
    store.activate('a.test', 'good');
    add('a.test', 'gone', 'ed25519');
    add('a.test', 'other', 'ed25519');
    const cut = add('a.test', 'cut', 'rsa', 2048);
    const space = add('a.test', 'space', 'rsa', 2048);
    add('a.test', 'testing', 'ed25519');
    store.activate('a.test', 'testing');
    add('a.test', 'sha1', 'ed25519');
    store.activate('a.test', 'sha1'); // testing retires
    const small = add('a.test', 'small', 'rsa', 1024);
    const twice = add('a.test', 'twice', 'ed25519');
    const big = add('a.test', 'big', 'rsa', 4096);
    add('a.test', 'old', 'ed25519');
    store.revoke('a.test', 'old');
    const alias = add('a.test', 'alias', 'ed25519');
    for (const domain of ['b.test', 'c.test', 'd.test']) add(domain, 's1', 'ed25519');
    const values = new Map(store.list().map((k) => [`${k.selector}.${k.domain}`, txtValue(k)]));
    store.close();
    const record = (selector: string, domain = 'a.test') => values.get(`${selector}.${domain}`)!;

    const spaced = splitValue(txtValue(space));
    spaced[1] = `${spaced[1]} `; // a panel that adds a space at its 255 split
    const zoneA = (goodValue: string) =>
      soa('a.test') +
      [
        'ns1 A 127.0.0.1',
        `good._domainkey TXT ${quoted(splitValue(goodValue))}`,
        `other._domainkey TXT ${quoted([txtValue({ ...keys.get('other.a.test')!, publicData: generateKey('ed25519').publicData })])}`,
        `cut._domainkey TXT ${quoted([txtValue(cut).slice(0, 255)])}`,
        `space._domainkey TXT ${quoted(spaced)}`,
        `testing._domainkey TXT ${quoted([record('testing').replace('p=', 't=y; p=')])}`,
        `sha1._domainkey TXT ${quoted([record('sha1').replace('p=', 'h=sha1; p=')])}`,
        `small._domainkey TXT ${quoted(splitValue(txtValue(small)))}`,
        `twice._domainkey TXT ${quoted([txtValue(twice)])}`,
        `twice._domainkey TXT "some-site-verification=123"`,
        `big._domainkey TXT ${quoted(splitValue(txtValue(big)))}`,
        `old._domainkey TXT ${quoted([record('old')])}`,
        'alias._domainkey CNAME alias.keys.relay.test.',
        '@ TXT "v=spf1 mx -all"',
        '_dmarc TXT "v=DMARC1; p=none; rua=mailto:dmarc@a.test"',
        '',
      ].join('\n');
    const zones = {
      'a.test': zoneA(txtValue(good)),
      'relay.test': soa('relay.test') + `alias.keys 172800 TXT ${quoted([txtValue(alias)])}\n`,
      'b.test': soa('b.test') + `s1._domainkey TXT ${quoted([record('s1', 'b.test')])}\n@ TXT "v=spf1 +all"\n`,
      'c.test':
        soa('c.test') +
        [
          `s1._domainkey TXT ${quoted([record('s1', 'c.test')])}`,
          '@ TXT "v=spf1 a mx include:spf1.c.test include:spf2.c.test ~all"',
          'spf1 TXT "v=spf1 a mx ptr exists:x.c.test include:spf2.c.test -all"',
          'spf2 TXT "v=spf1 a mx ptr exists:y.c.test -all"',
          '_dmarc TXT "v=DMARC1; p=quarantine; pct=50"',
          '',
        ].join('\n'),
      'd.test':
        soa('d.test') +
        `s1._domainkey TXT ${quoted([record('s1', 'd.test')])}\n@ TXT "v=spf1 mx"\n_dmarc TXT "v=DMARC1; p=reject; adkim=s; rua=mailto:dmarc@d.test"\n`,
    };
    knot = await startKnot(zones);
    knot2 = await startKnot({ 'a.test': zoneA(txtValue({ ...good, publicData: generateKey('rsa', 2048).publicData })) });
    silent = createSocket('udp4'); // a server that takes queries and never answers
    silent.on('message', () => {});
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
    silentAddress = `127.0.0.1:${silent.address().port}`;
    writeFileSync(config, `keys:\n  dir: ${JSON.stringify(keysDir)}\ndns:\n  resolvers: [${JSON.stringify(knot.address)}]\n  timeoutSeconds: 1\n`);
  });
  after(async () => {
    await knot?.stop();
    await knot2?.stop();
    silent?.close();
  });

  const check = (...args: string[]) => dkimRelay(['dns', 'check', '--config', config, ...args], dir);

  test('each status and lint finding from what knotd serves; exit 1', async () => {
    const run = await check('--json', '--nameserver', knot.address);
    assert.equal(run.code, 1, shown(run));
    const report = JSON.parse(run.stdout) as JsonReport;
    assert.equal(report.ok, false);
    const a = report.domains.find((d) => d.domain === 'a.test')!;
    assert.deepEqual(a.servers, [knot.address]);
    const by = (selector: string) => a.keys.find((k) => k.selector === selector)!;
    const codes = (selector: string) => by(selector).servers[0]!.findings.map((f) => f.code);
    const expected: [string, string, string[]][] = [
      ['good', 'match', []],
      ['gone', 'missing', ['missing']],
      ['other', 'mismatch', ['p-differs']],
      ['cut', 'malformed', ['p-truncated']],
      ['space', 'match', ['join-whitespace']],
      ['testing', 'match', ['t-y']],
      ['sha1', 'mismatch', ['h-sha1']],
      ['small', 'match', ['rsa-short']],
      ['twice', 'match', ['two-records']],
      ['big', 'match', ['tcp-only']],
      ['old', 'revoked', []],
      ['alias', 'match', ['long-ttl']],
    ];
    for (const [selector, status, findings] of expected) {
      assert.equal(by(selector).status, status, `${selector}: ${JSON.stringify(by(selector))}`);
      assert.deepEqual(codes(selector), findings, selector);
    }
    assert.equal(by('testing').state, 'retiring');
    assert.equal(by('old').state, 'revoked');
    assert.equal(by('big').servers[0]!.transport, 'tcp');
    assert.equal(by('good').servers[0]!.transport, 'udp');
    assert.deepEqual(by('alias').servers[0]!.chain, ['alias._domainkey.a.test', 'alias.keys.relay.test']);
    assert.equal(by('alias').servers[0]!.ttl, 172800);
    assert.ok(by('cut').servers[0]!.findings[0]!.fix!.includes('several strings'));
    // the exit-1 line names what is not published
    assert.match(
      run.stderr,
      /^dkim-relay: 4 record\(s\) not published as they must be: gone\._domainkey\.a\.test missing, other\._domainkey\.a\.test mismatch, cut\._domainkey\.a\.test malformed, sha1\._domainkey\.a\.test mismatch\n$/,
    );

    const readiness = (domain: string) => report.domains.find((d) => d.domain === domain)!.readiness;
    const rcodes = (domain: string) => readiness(domain).findings!.map((f) => f.code);
    assert.equal(readiness('a.test').spf, 'v=spf1 mx -all');
    assert.deepEqual(rcodes('a.test'), ['dmarc-none']);
    assert.deepEqual(rcodes('b.test'), ['spf-plus-all', 'dmarc-missing']);
    assert.match(readiness('b.test').findings![1]!.message, /receivers apply no policy/);
    assert.deepEqual(rcodes('c.test'), ['spf-lookups', 'dmarc-pct', 'dmarc-no-rua']);
    assert.match(readiness('c.test').findings![0]!.message, /SPF needs 17 DNS lookups/);
    assert.deepEqual(rcodes('d.test'), ['spf-no-all', 'dmarc-enforced', 'dmarc-adkim-strict']);
  });

  test('human output: grouped per domain and selector, one line per finding', async () => {
    const run = await check('--nameserver', knot.address);
    assert.equal(run.code, 1, shown(run));
    const out = run.stdout;
    assert.match(out, new RegExp(`^a\\.test  \\(asked ${knot.address.replace(/\./g, '\\.')}\\)$`, 'm'));
    assert.match(out, /^ {2}good\._domainkey\.a\.test {2}active {2}match {2}\[udp, ttl 3600\]$/m);
    assert.match(out, /^ {2}big\._domainkey\.a\.test {2}pending {2}match {2}\[tcp, ttl 3600\]\n {4}warn {4}tcp-only: .* — use a 2048-bit RSA key/m);
    assert.match(
      out,
      /^ {2}cut\._domainkey\.a\.test {2}pending {2}malformed .*\n {4}fail {4}p-truncated: p= is cut off after 237 of 392 characters .* — publish the whole value/m,
    );
    assert.match(out, /^ {2}alias\._domainkey\.a\.test {2}pending {2}match {2}\[udp, ttl 172800, via CNAME alias\.keys\.relay\.test\]$/m);
    assert.match(out, /^ {4}warn {4}dmarc-missing: no DMARC record: receivers apply no policy — publish p=none with rua= to start collecting reports/m);
    assert.match(
      out,
      /^ {4}info {4}dmarc-none: p=none: reports only, receivers do not act on failing mail — move to p=quarantine when the reports show all your mail passing$/m,
    );
    assert.match(out, /^ {4}SPF {5}v=spf1 \+all$/m);
    for (const line of out.split('\n')) assert.ok(line.length < 400, `a finding spans one short line: ${line}`);
  });

  test('a domain whose records all match exits 0, asking the servers of dns.resolvers', async () => {
    const run = await check('--domain', 'b.test');
    assert.equal(run.code, 0, shown(run));
    assert.equal(run.stderr, '');
    assert.match(run.stdout, new RegExp(`^b\\.test  \\(asked ${knot.address.replace(/\./g, '\\.')}\\)\n  s1\\._domainkey\\.b\\.test  pending  match`));
  });

  test('two servers serving different values: the disagreement is reported', async () => {
    const run = await check('--domain', 'a.test', '--nameserver', knot.address, '--nameserver', knot2.address, '--json');
    assert.equal(run.code, 1, shown(run));
    const good = (JSON.parse(run.stdout) as JsonReport).domains[0]!.keys.find((k) => k.selector === 'good')!;
    assert.deepEqual(
      good.servers.map((s) => [s.server, s.status]),
      [
        [knot.address, 'match'],
        [knot2.address, 'mismatch'],
      ],
    );
    assert.equal(good.status, 'mismatch');
    assert.match(
      good.disagreement!,
      new RegExp(`^servers disagree: ${knot.address} match \\(p=\\.\\.\\.\\S+\\), ${knot2.address} mismatch \\(p=\\.\\.\\.\\S+\\)`),
    );
    const gone = (JSON.parse(run.stdout) as JsonReport).domains[0]!.keys.find((k) => k.selector === 'gone')!;
    assert.equal(gone.disagreement, null);

    const human = await check('--domain', 'a.test', '--nameserver', knot.address, '--nameserver', knot2.address);
    assert.match(
      human.stdout,
      new RegExp(
        `^ {2}good\\._domainkey\\.a\\.test {2}active {2}mismatch\\n {4}${knot.address} {2}match .*\\n {4}${knot2.address} {2}mismatch .*\\n {6}fail {4}p-differs: .*\\n {4}warn {4}disagree: servers disagree`,
        'm',
      ),
    );
  });

  test('a server that does not answer: temperror, exit 1, one line', async () => {
    const run = await check('--domain', 'b.test', '--nameserver', silentAddress);
    assert.equal(run.code, 1, shown(run));
    assert.match(run.stdout, new RegExp(`s1\\._domainkey\\.b\\.test  pending  temperror\\n {4}fail {4}temperror: timeout after 1 s at ${silentAddress}`));
    assert.equal(run.stderr, 'dkim-relay: 1 record(s) not published as they must be: s1._domainkey.b.test temperror\n');
  });

  test('--authoritative asks the servers the zone names in NS, on port 53', async () => {
    // ns1.a.test is 127.0.0.1 in the zone; the check then goes to 127.0.0.1:53, not to the resolver asked for NS.
    const run = await check('--domain', 'b.test', '--nameserver', knot.address, '--authoritative', '--json');
    const report = JSON.parse(run.stdout) as JsonReport;
    assert.deepEqual(report.domains[0]!.servers, ['127.0.0.1:53'], shown(run));
  });

  test('a bogus --nameserver is a usage error: exit 2, one line', async () => {
    const run = await check('--nameserver', 'ns1.example.com');
    assert.equal(run.code, 2, shown(run));
    assert.equal(run.stdout, '');
    assert.equal(
      run.stderr,
      'dkim-relay: "ns1.example.com" is not a name server address — give an IP address with an optional port, e.g. 192.0.2.53, 192.0.2.53:5353 or [2001:db8::53]:53\n',
    );
  });
});
