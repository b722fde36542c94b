// Delegated selectors through the real CLI: `keys dns --format cname` prints
// the CNAMEs a domain's owner publishes once, and `dns check` asks the
// owner's names at a real Knot DNS server, so a missing CNAME is a missing
// record even when the relay's zone serves the key.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { delegatedName } from '../../src/dns/delegation.ts';
import { txtRecord } from '../../src/keys/record.ts';
import { SqliteKeyStore } from '../../src/keys/store.ts';
import type { KeyStore } from '../../src/keys/key-store.ts';
import { startKnot, type Knot } from '../helpers/knot.ts';
import { tempDir } from '../helpers/tmp.ts';
import { dkimRelay, type Run } from './support.ts';
import { skipWithout } from '../helpers/tools.ts';

const ZONE = 'dkim.relay.test';

function shown(run: Run): string {
  return `exit ${run.code}\n--- stdout\n${run.stdout.slice(0, 4000)}\n--- stderr\n${run.stderr.slice(0, 2000)}`;
}

/** A folder with keys for `domains` (sel1 active) and a configuration ending in `yaml`. */
function setup(yaml: string, domains: string[]): { dir: string; config: string; store: KeyStore } {
  const dir = tempDir('dkim-relay-cname-');
  const config = join(dir, 'dkim-relay.yaml');
  writeFileSync(config, `keys: {dir: ${join(dir, 'keys')}}\n${yaml}`);
  const store = SqliteKeyStore.open(join(dir, 'keys'));
  for (const domain of domains) store.generate({ domain, selector: 'sel1', algorithm: 'ed25519', activate: true });
  return { dir, config, store };
}

function oneLineError(run: Run, pattern: RegExp): void {
  assert.equal(run.code, 2, shown(run));
  assert.equal(run.stdout, '');
  assert.equal(run.stderr.trim().split('\n').length, 1, shown(run));
  assert.match(run.stderr, pattern);
}

describe('keys dns --format cname', () => {
  test('without dns.delegation: a one-line usage error', async () => {
    const { dir, config, store } = setup('', ['example.com']);
    store.close();
    oneLineError(
      await dkimRelay(['keys', 'dns', '--format', 'cname', '--config', config], dir),
      /--format cname needs delegated selectors, and dns.delegation is not set — set dns.delegation.zone/,
    );
    oneLineError(await dkimRelay(['keys', 'dns', '--as', 'value', '--config', config], dir), /--as applies to --format cname only/);
  });

  test('the CNAMEs of one domain or of all, as zone lines, name and target, or JSON', async () => {
    const { dir, config, store } = setup(`dns: {delegation: {zone: ${ZONE}}}\n`, ['a-b.test', 'a.b.test']);
    store.close();
    const one = await dkimRelay(['keys', 'dns', '--format', 'cname', '--domain', 'a-b.test', '--config', config], dir);
    assert.equal(one.code, 0, shown(one));
    assert.equal(
      one.stdout,
      `sel1._domainkey.a-b.test. 3600 IN CNAME sel1.a--b-test.${ZONE}.\n` + `sel2._domainkey.a-b.test. 3600 IN CNAME sel2.a--b-test.${ZONE}.\n`,
    );

    const all = await dkimRelay(['keys', 'dns', '--format', 'cname', '--as', 'value', '--config', config], dir);
    assert.equal(all.code, 0, shown(all));
    assert.deepEqual(
      all.stdout.trim().split('\n'),
      [
        `sel1._domainkey.a-b.test\tsel1.a--b-test.${ZONE}`,
        `sel2._domainkey.a-b.test\tsel2.a--b-test.${ZONE}`,
        `sel1._domainkey.a.b.test\tsel1.a-b-test.${ZONE}`,
        `sel2._domainkey.a.b.test\tsel2.a-b-test.${ZONE}`,
      ],
      'two domains, two distinct targets',
    );

    const json = await dkimRelay(['keys', 'dns', '--format', 'cname', '--domain', 'a.b.test', '--json', '--config', config], dir);
    assert.equal(json.code, 0, shown(json));
    assert.deepEqual(JSON.parse(json.stdout), [
      { name: 'sel1._domainkey.a.b.test', type: 'CNAME', ttl: 3600, value: `sel1.a-b-test.${ZONE}` },
      { name: 'sel2._domainkey.a.b.test', type: 'CNAME', ttl: 3600, value: `sel2.a-b-test.${ZONE}` },
    ]);

    // The TXT records themselves live at the targets, in the relay's zone.
    const txt = await dkimRelay(['keys', 'dns', '--domain', 'a.b.test', '--format', 'value', '--config', config], dir);
    assert.equal(txt.code, 0, shown(txt));
    assert.match(txt.stdout, new RegExp(`^sel1\\.a-b-test\\.${ZONE.replaceAll('.', '\\.')}\\tv=DKIM1; k=ed25519; p=`, 'm'));
  });

  test('a domain left out of dns.delegation.domains: a one-line usage error', async () => {
    const { dir, config, store } = setup(`dns: {delegation: {zone: ${ZONE}, domains: [a.test]}}\n`, ['a.test', 'b.test']);
    store.close();
    oneLineError(
      await dkimRelay(['keys', 'dns', '--format', 'cname', '--domain', 'b.test', '--config', config], dir),
      /b\.test does not use delegated selectors/,
    );
    const all = await dkimRelay(['keys', 'dns', '--format', 'cname', '--config', config], dir);
    assert.equal(all.code, 0, shown(all));
    assert.doesNotMatch(all.stdout, /b\.test/, 'only the delegated domain');
    assert.match(all.stdout, /^sel1\._domainkey\.a\.test\. 3600 IN CNAME sel1\.a-test\.dkim\.relay\.test\.$/m);
  });
});

describe('dns check with delegated selectors, against knotd', { skip: skipWithout('knotd', 'knotc') }, () => {
  let knot: Knot;
  let dir: string;
  let config: string;

  before(async () => {
    // good.test: the owner published the CNAME. lazy.test: did not, though the relay zone serves its key.
    // plain.test: serves the key at its own name instead of the CNAME.
    const s = setup(`dns: {delegation: {zone: ${ZONE}}}\n`, ['good.test', 'lazy.test', 'plain.test']);
    ({ dir, config } = s);
    const rr = (name: string, domain: string) => {
      const r = txtRecord(s.store.get(domain, 'sel1'));
      return `${name}. 300 IN TXT ${r.strings.map((x) => `"${x}"`).join(' ')}`;
    };
    const head = (origin: string) => [
      `$ORIGIN ${origin}.`,
      '$TTL 300',
      `@ SOA ns1.${origin}. hostmaster.${origin}. 1 3600 600 86400 300`,
      `@ NS ns1.${origin}.`,
      'ns1 A 127.0.0.1',
    ];
    const zones = {
      [ZONE]: [...head(ZONE), ...['good.test', 'lazy.test', 'plain.test'].map((d) => rr(delegatedName('sel1', d, ZONE), d)), ''].join('\n'),
      'good.test': [...head('good.test'), `sel1._domainkey CNAME ${delegatedName('sel1', 'good.test', ZONE)}.`, ''].join('\n'),
      'lazy.test': [...head('lazy.test'), ''].join('\n'),
      'plain.test': [...head('plain.test'), rr('sel1._domainkey.plain.test', 'plain.test'), ''].join('\n'),
    };
    s.store.close();
    knot = await startKnot(zones);
  });

  after(async () => {
    await knot?.stop();
  });

  test('the CNAME is followed where it exists; a missing CNAME is a missing record; exit 1', async () => {
    const run = await dkimRelay(['dns', 'check', '--nameserver', knot.address, '--json', '--config', config], dir);
    assert.equal(run.code, 1, shown(run));
    const report = JSON.parse(run.stdout) as {
      domains: { domain: string; keys: { status: string; servers: { chain?: string[]; findings: { code: string; message: string; fix?: string }[] }[] }[] }[];
    };
    const key = (domain: string) => report.domains.find((d) => d.domain === domain)!.keys[0]!;
    assert.equal(key('good.test').status, 'match', shown(run));
    assert.deepEqual(key('good.test').servers[0]!.chain, ['sel1._domainkey.good.test', delegatedName('sel1', 'good.test', ZONE)]);
    for (const domain of ['lazy.test', 'plain.test']) {
      assert.equal(key(domain).status, 'missing', `${domain}: ${shown(run)}`);
      const [no] = key(domain).servers[0]!.findings;
      assert.equal(no!.code, 'no-cname');
      assert.equal(no!.message, `sel1._domainkey.${domain} is no CNAME to ${delegatedName('sel1', domain, ZONE)}`);
      assert.match(no!.fix!, /keys dns --format cname/);
    }
    assert.match(run.stderr, /2 record\(s\) not published as they must be: sel1\._domainkey\.lazy\.test missing, sel1\._domainkey\.plain\.test missing/);
  });
});
