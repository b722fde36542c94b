// A selector per sending source, end to end: a real `dkim-relay serve`, three
// AUTH users of one domain (two clients with key chains of their own, one
// signing with the domain's keys), keys made and revoked with the real CLI,
// records served by Knot DNS, and every signature checked by dkimpy fetching
// the key over DNS as a receiver would. Revoking one client's chain leaves the
// others signing; the revoked client's mail gets what its whenNoKey says.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { hashPassword } from '../../src/access/passwords.ts';
import { dkimRelay, serve, type Served } from '../cli/support.ts';
import { verifyWithDkimpyDns } from '../helpers/dns-verify.ts';
import { startKnot, type Knot } from '../helpers/knot.ts';
import { dkimFields, selfSignedCert, send } from '../helpers/relay-harness.ts';
import { tempDir } from '../helpers/tmp.ts';
import { skipWithout } from '../helpers/tools.ts';

const DOMAIN = 'chains.test';
const PASSWORD = 'correct horse battery';

interface Record {
  name: string;
  strings: string[];
}

function zone(serial: number, records: Record[]): { [origin: string]: string } {
  return {
    [DOMAIN]: [
      `$ORIGIN ${DOMAIN}.`,
      '$TTL 300',
      `@ SOA ns1.${DOMAIN}. hostmaster.${DOMAIN}. ${serial} 3600 600 86400 300`,
      `@ NS ns1.${DOMAIN}.`,
      'ns1 A 127.0.0.1',
      ...records.map((r) => `${r.name}. 300 IN TXT ${r.strings.map((s) => `"${s}"`).join(' ')}`),
      '',
    ].join('\n'),
  };
}

describe('a key chain per sending client, through a real relay and real DNS', { skip: skipWithout('knotd', 'knotc') }, () => {
  const base = tempDir('dkim-relay-chains-');
  const config = join(base, 'relay.yaml');
  let knot: Knot;
  let relay: Served;
  let serial = 1;

  async function cli(...args: string[]): Promise<string> {
    const run = await dkimRelay(['--config', config, ...args], base);
    assert.equal(run.code, 0, `${args.join(' ')}: ${run.stderr}`);
    return run.stdout;
  }

  /** DNS serves the records `keys dns` gives now (revoked keys with an empty p=). */
  async function publish(): Promise<void> {
    const records = JSON.parse(await cli('keys', 'dns', '--json')) as Record[];
    await knot.update(zone(++serial, records));
  }

  function mail(user: string) {
    return send({
      port: relay.port(),
      tls: true,
      auth: { user, pass: PASSWORD },
      from: `${user}@${DOMAIN}`,
      to: ['someone@example.net'],
      raw: `From: <${user}@${DOMAIN}>\r\nTo: <someone@example.net>\r\nSubject: from ${user}\r\n\r\nhello from ${user}\r\n`,
    });
  }

  /** Mail from `user` is signed with a selector matching `selector`, and dkimpy verifies it over DNS. */
  async function signedWith(user: string, selector: RegExp): Promise<string> {
    const result = await mail(user);
    assert.ok(result.ok, `${user}: ${result.response}`);
    const file = /written to (\S+\.eml)/.exec(result.response)?.[1];
    assert.ok(file, result.response);
    const message = readFileSync(file);
    const fields = dkimFields(message);
    assert.equal(fields.length, 1, `${user}: one signature expected`);
    const s = /\bs=([^;\s]+)/.exec(fields[0]!)![1]!;
    assert.match(s, selector, `${user} signed with ${s}`);
    const verdicts = await verifyWithDkimpyDns(message, knot.address);
    assert.deepEqual(
      verdicts.map((v) => v.result),
      ['pass'],
      `${user}: dkimpy on ${s}`,
    );
    return s;
  }

  /** `dkim-relay sign` of a message from `user`, with `extra` options. */
  function sign(user: string, ...extra: string[]) {
    const raw = `From: <${user}@${DOMAIN}>\r\nTo: <someone@example.net>\r\nSubject: signed by the CLI\r\n\r\nhello from ${user}\r\n`;
    return dkimRelay(['--config', config, 'sign', ...extra], base, { input: raw });
  }

  /** The selector of the one signature `sign` made; dkimpy verifies it over DNS. */
  async function signedByCli(run: { code: number | null; stdout: string; stderr: string }): Promise<string> {
    assert.equal(run.code, 0, run.stderr);
    const message = Buffer.from(run.stdout);
    const fields = dkimFields(message);
    assert.equal(fields.length, 1, 'one signature expected');
    const verdicts = await verifyWithDkimpyDns(message, knot.address);
    assert.deepEqual(
      verdicts.map((v) => v.result),
      ['pass'],
    );
    return /\bs=([^;\s]+)/.exec(fields[0]!)![1]!;
  }

  before(async () => {
    knot = await startKnot(zone(serial, []));
    const tls = selfSignedCert(base);
    const hash = await hashPassword(PASSWORD);
    writeFileSync(
      config,
      [
        `keys: {dir: ${join(base, 'keys')}}`,
        `listen: {port: 0, hostname: relay.test, tls: {key: ${tls.key}, cert: ${tls.cert}}}`,
        'metrics: {listen: 127.0.0.1:0}',
        `delivery: {mode: sync, upstream: {type: file, dir: ${join(base, 'outbox')}}}`,
        'rotation: {check: "off"}',
        'signing: {unknownDomain: reject}',
        'access:',
        '  networks: []',
        '  users:',
        ...['scanner', 'crm', 'office'].map((name) => `    - {name: ${name}, password: "${hash}"}`),
        'clients:',
        `  - {user: scanner, domains: [${DOMAIN}], name: scanner, keys: own, whenNoKey: domain}`,
        `  - {user: crm, domains: [${DOMAIN}], name: crm, keys: own}`,
        '',
      ].join('\n'),
    );
    await cli('keys', 'generate', '--domain', DOMAIN, '--algorithm', 'rsa', '--bits', '1024', '--activate');
    await cli('keys', 'generate', '--domain', DOMAIN, '--client', 'scanner', '--algorithm', 'rsa', '--bits', '1024', '--activate');
    await cli('keys', 'generate', '--domain', DOMAIN, '--client', 'crm', '--algorithm', 'rsa', '--bits', '1024', '--activate');
    await publish();
    relay = await serve(['--config', config], base);
  });

  after(async () => {
    relay?.kill();
    await knot?.stop();
  });

  test("each client signs with its own chain's selector, the other user with the domain's, and each verifies over DNS", async () => {
    await signedWith('scanner', /^scanner-\d{6}a$/);
    await signedWith('crm', /^crm-\d{6}a$/);
    await signedWith('office', /^s\d{6}a$/);
    const list = await cli('keys', 'list', '--domain', DOMAIN, '--client', 'crm');
    assert.match(list, /^DOMAIN\s+SELECTOR\s.*\sFINGERPRINT\s+CHAIN\n/);
    assert.match(list, /\nchains\.test\s+crm-\d{6}a\s+rsa\s.*\sSHA256:\S+\s+client crm\n/);
    assert.doesNotMatch(list, /scanner|\ss\d{6}a/);
  });

  test("sign --client signs with that client's chain, as the relay signs its mail; a name without keys: own is refused in one line (exit 2)", async () => {
    assert.match(await signedByCli(await sign('crm', '--client', 'crm')), /^crm-\d{6}a$/);
    assert.match(await signedByCli(await sign('scanner', '--client', 'Scanner')), /^scanner-\d{6}a$/);
    assert.match(await signedByCli(await sign('crm')), /^s\d{6}a$/, "without --client: the domain's keys");
    for (const name of ['office', 'nobody']) {
      const refused = await sign('office', '--client', name);
      assert.equal(refused.code, 2, refused.stderr);
      assert.equal(refused.stdout, '', 'nothing is signed');
      assert.match(
        refused.stderr,
        new RegExp(`^dkim-relay: no client named ${name} signs with keys of its own — give --client the name of a clients\\[\\] entry with keys: own`),
      );
      assert.equal(refused.stderr.split('\n').length, 2, refused.stderr);
    }
  });

  test('a key for a client without keys: own, or in a domain with delegated selectors, is refused in one line (exit 2)', async () => {
    const unknown = await dkimRelay(['--config', config, 'keys', 'generate', '--domain', DOMAIN, '--client', 'office'], base);
    assert.equal(unknown.code, 2, unknown.stderr);
    assert.match(unknown.stderr, /^dkim-relay: no client named office signs with keys of its own — add name: office and keys: own to its clients\[\] entry/);
    const delegated = join(base, 'delegated.yaml');
    writeFileSync(delegated, `${readFileSync(config, 'utf8')}dns: {delegation: {zone: keys.relay.test, domains: [other.test]}}\n`);
    const refused = await dkimRelay(['--config', delegated, 'keys', 'generate', '--domain', 'other.test', '--client', 'scanner'], base);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /^dkim-relay: other\.test uses delegated selectors, which serve the domain's own keys only — /);
    assert.equal(refused.stderr.split('\n').length, 2, refused.stderr);
  });

  test("status, status --client and the status page show each key's chain", async () => {
    const text = await cli('status', '--no-dns');
    assert.match(text, /scanner-\d{6}a \(client scanner\)/);
    assert.match(text, /crm-\d{6}a \(client crm\)/);
    const own = JSON.parse(await cli('status', '--no-dns', '--json', '--client', 'scanner')) as {
      domains: { keys: { selector: string; client: string | null }[] }[];
    };
    assert.deepEqual(
      own.domains.flatMap((d) => d.keys.map((k) => k.client)),
      ['scanner'],
    );
    const line = relay
      .output()
      .split('\n')
      .find((l) => l.includes('"metrics listening"'));
    assert.ok(line, 'the relay logs where its status page listens');
    const page = await (await fetch(`http://${(JSON.parse(line) as { listen: string }).listen}/`)).text();
    assert.match(
      page,
      /data-selector="scanner-\d{6}a"[^>]*>\s*<span class="name">scanner-\d{6}a<\/span> <span class="badge idle" data-client="scanner">client scanner<\/span>/,
    );
  });

  test("a client's chain revoked: its mail gets unknownDomain's rule (550), every other source still signs and verifies", async () => {
    const out = await cli('keys', 'revoke', '--domain', DOMAIN, '--client', 'crm');
    assert.match(out, /chains\.test \(client crm\) crm-\d{6}a: rsa 1024 bits, revoked/);
    await publish();
    const refused = await mail('crm');
    assert.ok(!refused.ok, `crm's mail was accepted after its chain was revoked: ${refused.response}`);
    assert.equal(refused.code, 550, refused.response);
    assert.match(refused.response, /no active DKIM key of client crm for chains\.test/);
    // status --client speaks of the client's chain, not of the domain, whose own keys still sign.
    const status = await dkimRelay(['--config', config, 'status', '--no-dns', '--client', 'crm'], base);
    assert.match(status.stdout, /no active key of client crm: its mail follows its whenNoKey/, status.stdout + status.stderr);
    assert.doesNotMatch(status.stdout, /nothing signs for this domain/);
    await signedWith('scanner', /^scanner-\d{6}a$/);
    await signedWith('office', /^s\d{6}a$/);
  });

  test("a client with whenNoKey: domain signs with the domain's keys once its own chain is revoked", async () => {
    await cli('keys', 'revoke', '--domain', DOMAIN, '--client', 'scanner');
    await publish();
    await signedWith('scanner', /^s\d{6}a$/);
    await signedWith('office', /^s\d{6}a$/);
  });

  test("sign --client follows the chain's whenNoKey once it has no active key: the domain's keys, or signing.unknownDomain's refusal", async () => {
    assert.match(await signedByCli(await sign('scanner', '--client', 'scanner')), /^s\d{6}a$/);
    const refused = await sign('crm', '--client', 'crm');
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /not signed: 550 .*no active DKIM key of client crm for chains\.test/);
  });

  test("keys history --client lists only that chain's events; every event names its chain", async () => {
    const crm = (await cli('keys', 'history', '--client', 'crm')).trimEnd().split('\n');
    assert.match(crm[0]!, /^AT\s+DOMAIN\s+SELECTOR\s+FROM\s+TO\s+BY\s+WHY\s+CHAIN$/);
    assert.deepEqual(
      crm.slice(1).map((l) => /\s(crm-\d{6}a)\s+(\S+)\s+(\S+)\s+cli\s.*\sclient crm$/.exec(l)?.slice(2)),
      [
        ['-', 'active'],
        ['active', 'retiring'],
        ['retiring', 'revoked'],
      ],
    );
    const all = JSON.parse(await cli('keys', 'history', '--domain', DOMAIN, '--json')) as { selector: string; client: string | null }[];
    assert.deepEqual([...new Set(all.map((e) => `${e.selector.replace(/\d{6}a$/, '')} ${e.client}`))].sort(), ['crm- crm', 's null', 'scanner- scanner']);
    assert.equal((await cli('keys', 'history', '--client', 'nobody')).trim(), 'no key events for client nobody');
  });

  test('a revoked client key never signs again: activating it is refused', async () => {
    const keys = JSON.parse(await cli('keys', 'list', '--client', 'crm', '--json')) as { selector: string; state: string; client: string }[];
    assert.deepEqual(
      keys.map((k) => [k.client, k.state]),
      [['crm', 'revoked']],
    );
    const run = await dkimRelay(['--config', config, 'keys', 'activate', '--domain', DOMAIN, '--selector', keys[0]!.selector, '--force'], base);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /is revoked and never signs again/);
    const refused = await mail('crm');
    assert.equal(!refused.ok && refused.code, 550, refused.response);
  });
});
