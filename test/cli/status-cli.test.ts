// `dkim-relay status`, the real CLI on a real key store: keys in several
// states, DNS observations as the checker stores them, DMARC readiness from a
// loopback DNS server (or skipped with --no-dns, or failing), --json parsed,
// and the exit status: 0, or 1 when something needs a person.
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openDatabase } from '../../src/keys/database.ts';
import { migrate } from '../../src/keys/migrations.ts';
import { SqliteKeyStore } from '../../src/keys/store.ts';
import type { StatusReport } from '../../src/observability/status-report.ts';
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts';
import { tempDir } from '../helpers/tmp.ts';
import { PRIVATE_ARMOUR } from '../keys/support.ts';
import { dkimRelay, type Run } from './support.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function shown(run: Run): string {
  return `exit ${run.code}\n--- stdout\n${run.stdout.slice(0, 6000)}\n--- stderr\n${run.stderr.slice(0, 2000)}`;
}

function json(run: Run): StatusReport {
  assert.ok(!run.stdout.includes(PRIVATE_ARMOUR), 'key material in the output');
  try {
    return JSON.parse(run.stdout) as StatusReport;
  } catch {
    assert.fail(`stdout is not JSON:\n${shown(run)}`);
  }
}

/** A directory with a configuration whose DNS settings point at `resolver`. */
function setUp(resolver: string, extra = ''): { dir: string; keysDir: string; config: string } {
  const dir = tempDir('dkim-relay-status-');
  const keysDir = join(dir, 'keys');
  const config = join(dir, 'dkim-relay.yaml');
  writeFileSync(config, `keys:\n  dir: ${keysDir}\ndns:\n  resolvers: ["${resolver}"]\n  timeoutSeconds: 1\nrotation:\n  interval: 90d\n${extra}`);
  return { dir, keysDir, config };
}

/** Rows as the DNS checker writes them, into the store's schema v2 tables. */
function withDatabase(keysDir: string, use: (db: ReturnType<typeof openDatabase>) => void): void {
  const db = openDatabase(join(keysDir, 'keys.db'));
  try {
    migrate(db);
    use(db);
  } finally {
    db.close();
  }
}

/**
 * A DNS server that answers every query, but only after `delayMs`: it forwards
 * to `upstream` late. Slow enough, over enough names, to outlast the lookup's bound.
 */
async function slowDns(upstream: DnsServer, delayMs: number): Promise<{ address: string; asked: () => number; close: () => Promise<void> }> {
  const front = createSocket('udp4');
  const back = createSocket('udp4');
  await Promise.all([front, back].map((s) => new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve))));
  const askers = new Map<number, { port: number; address: string }>();
  const timers = new Set<NodeJS.Timeout>();
  let asked = 0;
  front.on('message', (query, peer) => {
    asked++;
    const timer = setTimeout(() => {
      timers.delete(timer);
      askers.set(query.readUInt16BE(0), peer);
      back.send(query, upstream.port, '127.0.0.1');
    }, delayMs);
    timers.add(timer);
  });
  back.on('message', (reply) => {
    const peer = askers.get(reply.readUInt16BE(0));
    if (peer) front.send(reply, peer.port, peer.address);
  });
  return {
    address: `127.0.0.1:${front.address().port}`,
    asked: () => asked,
    close: async () => {
      for (const t of timers) clearTimeout(t);
      await Promise.all([front, back].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    },
  };
}

const iso = (msAgo: number) => new Date(Date.now() - msAgo).toISOString();

describe('dkim-relay status', { concurrency: 2 }, () => {
  let dns: DnsServer;
  const includes = Array.from({ length: 20 }, (_, i) => `i${i}.slow.test`);
  before(async () => {
    dns = await startDnsServer(
      new Map([
        [
          'slow.test',
          [
            [
              `v=spf1 ${includes
                .slice(0, 10)
                .map((d) => `include:${d}`)
                .join(' ')} `,
              `${includes
                .slice(10)
                .map((d) => `include:${d}`)
                .join(' ')} -all`,
            ],
          ],
        ],
        ...includes.map((d): [string, string[][]] => [d, [['v=spf1 -all']]]),
        ['a.test', [['v=spf1 ip4:192.0.2.0/24 -all']]],
        ['_dmarc.a.test', [['v=DMARC1; p=reject; rua=mailto:dmarc@a.test']]],
        ['b.test', [['v=spf1 -all'], ['v=spf1 +all']]],
      ]),
    );
  });
  after(() => dns.close());

  test('an empty store: says how to begin, exit 0, and --json has no domains', async () => {
    const { dir, keysDir, config } = setUp(dns.address);
    SqliteKeyStore.open(keysDir).close(); // a store without keys (one that does not exist is a configuration error)
    const run = await dkimRelay(['status', '--config', config, '--no-dns'], dir);
    assert.equal(run.code, 0, shown(run));
    assert.equal(run.stdout, 'no keys yet: dkim-relay keys generate --domain example.com\n');
    assert.equal(run.stderr, '');
    const report = json(await dkimRelay(['status', '--config', config, '--json'], dir));
    assert.equal(report.ok, true);
    assert.deepEqual(report.domains, []);
  });

  test('keys in several states with their DNS observations: next steps, last checks, and what needs a person (exit 1)', async () => {
    const { dir, keysDir, config } = setUp(dns.address);
    const store = SqliteKeyStore.open(keysDir);
    store.generate({ domain: 'a.test', selector: 'old', algorithm: 'ed25519', activate: true });
    store.generate({ domain: 'a.test', selector: 'cur', algorithm: 'ed25519' });
    store.activate('a.test', 'cur'); // old retires
    store.generate({ domain: 'a.test', selector: 'next', algorithm: 'ed25519' });
    store.generate({ domain: 'a.test', selector: 'dead', algorithm: 'ed25519' });
    store.revoke('a.test', 'dead');
    store.generate({ domain: 'c.test', selector: 'wait', algorithm: 'ed25519' });
    const ids = new Map(store.list().map((k) => [`${k.selector}.${k.domain}`, k.id]));
    store.close();

    withDatabase(keysDir, (db) => {
      // c.test's key was generated nine days ago and DNS never served it: stuck (stuckAfter 7d).
      db.prepare(`UPDATE keys SET created_at = ? WHERE id = ?`).run(iso(9 * DAY), ids.get('wait.c.test'));
      const insert = db.prepare(
        `INSERT INTO dns_observations (key_id, server, first_seen_matching, last_checked, last_state, detail) VALUES (?, ?, ?, ?, ?, ?)`,
      );
      insert.run(ids.get('cur.a.test'), dns.address, iso(3 * DAY), iso(HOUR), 'match', '');
      insert.run(ids.get('next.a.test'), dns.address, iso(DAY), iso(HOUR), 'match', '');
      insert.run(ids.get('old.a.test'), dns.address, null, iso(HOUR), 'missing', 'NXDOMAIN');
      insert.run(ids.get('wait.c.test'), dns.address, null, iso(HOUR), 'missing', 'NXDOMAIN');
    });

    const run = await dkimRelay(['status', '--config', config, '--no-dns'], dir);
    assert.equal(run.code, 1, shown(run));
    assert.equal(run.stderr, 'dkim-relay: 2 thing(s) need a person: a.test, c.test (see above)\n', shown(run));
    const text = run.stdout;
    const block = (domain: string) => text.split('\n\n').find((b) => b.startsWith(`${domain}\n`)) ?? assert.fail(`no block for ${domain}:\n${text}`);
    const a = block('a.test');
    assert.match(a, /^ {2}active {4}cur {3}ed25519 {2}since \d{4}-\d\d-\d\d \d\d:\d\d UTC \(\d+m\)\n {12}DNS: {2}127\.0\.0\.1:\d+ match; last checked /m);
    assert.match(
      a,
      /^ {2}pending {3}next {2}ed25519 {2}since .*\n {12}next: activates \d{4}-\d\d-\d\d \d\d:\d\d UTC if DNS keeps serving it\n {12}DNS: {2}127\.0\.0\.1:\d+ match; last checked /m,
    );
    assert.match(
      a,
      /^ {2}retiring {2}old {3}ed25519 {2}since .*\n {12}next: revoked .* UTC\n {12}DNS: {2}127\.0\.0\.1:\d+ missing \(NXDOMAIN\); last checked /m,
    );
    assert.match(a, /^ {2}revoked {3}dead {2}ed25519 {2}since .*\n {12}next: removed .* UTC\n {12}DNS: {2}never checked$/m);
    assert.match(a, /^ {2}DMARC {2}not checked \(--no-dns\)$/m);
    assert.match(
      a,
      /^ {2}! old\._domainkey\.a\.test \(retiring\) is not served by 127\.0\.0\.1:\d+ \(missing: NXDOMAIN\); receivers cannot verify what it signs: publish it$/m,
    );
    const c = block('c.test');
    assert.match(c, /^ {2}no active key: nothing signs for this domain yet$/m);
    assert.match(c, /^ {2}pending {2}wait {2}ed25519 {2}since .* \(9d\)$/m);
    assert.match(c, /^ {2}! wait\._domainkey\.c\.test has waited for DNS since /m);
    assert.match(text, /^2 things need attention \(marked !\)$/m);

    const report = json(await dkimRelay(['status', '--config', config, '--no-dns', '--json'], dir));
    assert.equal(report.ok, false);
    assert.deepEqual(
      report.domains.map((d) => d.domain),
      ['a.test', 'c.test'],
    );
    const [ja, jc] = report.domains;
    assert.deepEqual(
      ja!.keys.map((k) => [k.selector, k.state, k.algorithm, k.bits]),
      [
        ['cur', 'active', 'ed25519', 256],
        ['next', 'pending', 'ed25519', 256],
        ['old', 'retiring', 'ed25519', 256],
        ['dead', 'revoked', 'ed25519', 256],
      ],
    );
    const cur = ja!.keys[0]!;
    assert.equal(cur.next, null, 'a newer pending key is on its way: no rotation of its own');
    assert.deepEqual(
      cur.dns.servers.map((s) => [s.server, s.state]),
      [[dns.address, 'match']],
    );
    const next = ja!.keys[1]!;
    assert.equal(next.next!.step, 'activate');
    assert.equal(next.next!.due, false);
    assert.ok(
      Math.abs(Date.parse(next.next!.at!) - (Date.now() + DAY)) < 10 * 60_000,
      `activates a day from now (publishFor 48h, served for a day): ${next.next!.at}`,
    );
    assert.equal(ja!.keys[2]!.next!.step, 'revoke');
    assert.equal(ja!.keys[3]!.next!.step, 'remove');
    assert.deepEqual(ja!.keys[3]!.dns, { lastChecked: null, servers: [] });
    assert.deepEqual(ja!.readiness, { status: 'not-checked' });
    assert.deepEqual(
      ja!.attention.map((x) => [x.code, x.selector]),
      [['record-lost', 'old']],
    );
    assert.deepEqual(
      jc!.attention.map((x) => [x.code, x.selector]),
      [['stuck-pending', 'wait']],
    );
    assert.equal(jc!.keys[0]!.ageSeconds >= 9 * 86_400, true);
  });

  test('DMARC readiness from DNS: explained when served, a DNS failure reported without a crash', async () => {
    const { dir, keysDir, config } = setUp(dns.address);
    const store = SqliteKeyStore.open(keysDir);
    store.generate({ domain: 'a.test', selector: 's1', algorithm: 'ed25519', activate: true });
    store.close();

    const run = await dkimRelay(['status', '--config', config], dir);
    assert.equal(run.code, 0, shown(run));
    assert.equal(run.stderr, '');
    assert.match(
      run.stdout,
      new RegExp(`^ {2}DMARC {2}p=reject: receivers refuse mail that fails DMARC {2}\\(as ${dns.address.replace(/\./g, '\\.')} sees it\\)$`, 'm'),
    );
    assert.match(run.stdout, /^nothing needs attention$/m);
    const report = json(await dkimRelay(['status', '--config', config, '--json'], dir));
    assert.equal(report.ok, true);
    const readiness = report.domains[0]!.readiness;
    assert.equal(readiness.status, 'checked');
    assert.equal(readiness.status === 'checked' && readiness.spf, 'v=spf1 ip4:192.0.2.0/24 -all');
    assert.equal(readiness.status === 'checked' && readiness.dmarc, 'v=DMARC1; p=reject; rua=mailto:dmarc@a.test');

    const failing = await startDnsServer();
    failing.mode = 'servfail';
    try {
      const down = await dkimRelay(['status', '--config', config, '--nameserver', failing.address], dir);
      assert.equal(down.code, 0, shown(down));
      assert.equal(down.stderr, '', shown(down));
      assert.match(down.stdout, /^ {2}DMARC {2}DNS lookup failed: SERVFAIL from 127\.0\.0\.1:\d+ for a\.test TXT$/m);
      const downJson = json(await dkimRelay(['status', '--config', config, '--nameserver', failing.address, '--json'], dir));
      assert.deepEqual(downJson.domains[0]!.readiness, {
        status: 'failed',
        server: failing.address,
        reason: `SERVFAIL from ${failing.address} for a.test TXT`,
      });
    } finally {
      await failing.close();
    }
  });

  test('a DNS server too slow to answer every SPF include: the lookup gives up after 4 × dns.timeoutSeconds, and the command ends', async () => {
    const { dir, keysDir, config } = setUp(dns.address);
    const store = SqliteKeyStore.open(keysDir);
    store.generate({ domain: 'slow.test', selector: 's1', algorithm: 'ed25519', activate: true });
    store.close();
    // 400 ms per answer, within the 1 s timeout, but the domain, its _dmarc and 20 includes one after the other take about 9 s.
    const slow = await slowDns(dns, 400);
    try {
      const run = await dkimRelay(['status', '--config', config, '--nameserver', slow.address, '--json'], dir);
      const report = json(run);
      assert.equal(run.code, 0, shown(run));
      assert.deepEqual(report.domains[0]!.readiness, { status: 'failed', server: slow.address, reason: 'no complete answer within 4 s' });
      // Once given up on, the lookup sends nothing more: when the command has ended, not every include was asked.
      const names = 2 + includes.length;
      assert.ok(slow.asked() > 2 && slow.asked() < names, `${slow.asked()} of ${names} names asked`);
    } finally {
      await slow.close();
    }
  });

  test('a key file others can read needs a person; a broken SPF record is shown but needs none', async () => {
    const { dir, keysDir, config } = setUp(dns.address);
    const store = SqliteKeyStore.open(keysDir);
    const key = store.generate({ domain: 'b.test', selector: 's1', algorithm: 'ed25519', activate: true });
    store.close();

    const fine = await dkimRelay(['status', '--config', config], dir);
    assert.equal(fine.code, 0, shown(fine));
    assert.match(fine.stdout, /^ {9}fail spf-multiple: b\.test has 2 SPF records/m);
    assert.match(fine.stdout, /^nothing needs attention$/m);

    chmodSync(join(keysDir, key.file), 0o644);
    const run = await dkimRelay(['status', '--config', config], dir);
    assert.equal(run.code, 1, shown(run));
    assert.match(run.stdout, /^ {2}! .*s1\._domainkey\.b\.test.*readable/m);
    assert.equal(run.stderr, 'dkim-relay: 1 thing(s) need a person: b.test (see above)\n');
    const report = json(await dkimRelay(['status', '--config', config, '--json'], dir));
    assert.equal(report.ok, false);
    assert.deepEqual(
      report.domains[0]!.attention.map((a) => [a.code, a.selector]),
      [['key-unusable', 's1']],
    );
  });

  test('a --nameserver that is no address is a usage error in one line', async () => {
    const { dir, config } = setUp(dns.address);
    const run = await dkimRelay(['status', '--config', config, '--nameserver', 'bogus'], dir);
    assert.equal(run.code, 2, shown(run));
    assert.equal(run.stdout, '');
    assert.match(run.stderr, /^dkim-relay: "bogus" is not a name server address — give an IP address/);
  });
});
