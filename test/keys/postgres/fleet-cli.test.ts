// A fleet's shared key store, through the real program: `keys migrate` from a
// relay's SQLite store into a private PostgreSQL cluster (twice: nothing
// copied twice), a dump that reveals no private key, two `serve` processes
// on keys.database signing mail dkimpy verifies, `keys rewrap` to a new
// key-encryption key, and the settings' one-line refusals that never show a password.
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { openKeyStore } from '../../../src/keys/open-store.ts';
import { PG_LATEST_VERSION } from '../../../src/keys/pg-schema.ts';
import { verifyWithDkimpy } from '../../helpers/independent-verify.ts';
import { send, startSink, type Sink } from '../../helpers/relay-harness.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { until } from '../../helpers/until.ts';
import { dkimRelay, serve, type Run, type Served } from '../../cli/support.ts';
import { PRIVATE_ARMOUR } from '../support.ts';
import { GOOGLE, YAHOO, gzip, reportXml } from '../../reports/support.ts';
import { postgresOrSkip, startPgCluster, type PgCluster } from './pg-cluster.ts';
import { kekFile } from './support.ts';

const pgSkip = postgresOrSkip();

function ok(run: Run): Run {
  assert.equal(run.code, 0, `exit ${run.code}\n${run.stderr}${run.stdout}`);
  return run;
}

/** Exit 2 with one line on stderr, no stack trace. */
function refused(run: Run, what: RegExp): void {
  assert.equal(run.code, 2, `exit ${run.code}\n${run.stderr}${run.stdout}`);
  assert.match(run.stderr, what);
  assert.doesNotMatch(run.stderr, /\n\s+at /);
}

describe('a fleet sharing one PostgreSQL key store', { skip: pgSkip.skip }, () => {
  let cluster: PgCluster;
  let sink: Sink;
  const relays: Served[] = [];
  before(async () => {
    cluster = await startPgCluster();
    sink = await startSink();
  });
  after(async () => {
    for (const r of relays) r.kill();
    await sink?.close();
    await cluster?.stop();
  });

  /** A relay's folder: relay.yaml with `keys` (as YAML flow) and delivery to the sink. */
  function relayDir(keys: string, check = 'off'): { dir: string; config: string } {
    const dir = tempDir();
    const config = join(dir, 'relay.yaml');
    writeFileSync(
      config,
      `keys: ${keys}\nmetrics: {listen: "127.0.0.1:0"}\nlisten: {port: 0}\nrotation: {check: "${check}"}\n` +
        `delivery: {mode: sync, upstream: {type: smtp, host: 127.0.0.1, port: ${sink.port}}}\nqueue: {dir: ${join(dir, 'queue')}}\n`,
    );
    return { dir, config };
  }

  test('keys migrate copies a store with its history, twice without duplicates; serve signs from PostgreSQL; keys rewrap re-seals', async () => {
    // A relay's own SQLite store with some history: an active RSA key, a retired one revoked, a pending Ed25519 key.
    const single = relayDir(`{dir: KEYS}`);
    const keysDir = join(single.dir, 'keys');
    writeFileSync(single.config, readFileSync(single.config, 'utf8').replace('KEYS', keysDir));
    const cli = (dir: string, config: string, args: string[]) => dkimRelay(['--config', config, ...args], dir);
    ok(await cli(single.dir, single.config, ['keys', 'generate', '--domain', 'example.com', '--selector', 'old', '--bits', '1024', '--activate']));
    ok(await cli(single.dir, single.config, ['keys', 'generate', '--domain', 'example.com', '--selector', 'new', '--bits', '1024']));
    ok(await cli(single.dir, single.config, ['keys', 'activate', '--domain', 'example.com', '--selector', 'new', '--force']));
    ok(await cli(single.dir, single.config, ['keys', 'revoke', '--domain', 'example.com', '--selector', 'old']));
    ok(await cli(single.dir, single.config, ['keys', 'generate', '--domain', 'example.org', '--algorithm', 'ed25519', '--activate']));
    const pems = ['old', 'new'].map((s) => readFileSync(join(keysDir, `${s}._domainkey.example.com.pem`), 'utf8'));

    // What the rotation scheduler recorded beside the keys: what a DNS server served, a notice sent.
    const db = new Database(join(keysDir, 'keys.db'));
    db.prepare(
      `INSERT INTO dns_observations (key_id, server, first_seen_matching, last_checked, last_state, detail) VALUES (2, '192.0.2.53', ?, ?, 'matching', '')`,
    ).run(new Date().toISOString(), new Date().toISOString());
    db.prepare(`INSERT INTO notifications (key, key_id, sent_at) VALUES ('stuck:2', 2, ?)`).run(new Date().toISOString());
    db.close();
    // Reports receivers sent back, read into keys.db: they move with the store.
    const reportFiles = [GOOGLE, YAHOO].map((spec, i) => {
      const file = join(single.dir, `report${i}.xml.gz`);
      writeFileSync(file, gzip(reportXml(spec)));
      return file;
    });
    ok(await cli(single.dir, single.config, ['reports', 'import', ...reportFiles]));

    const url = await cluster.createDatabase('fleet');
    const kek = kekFile(single.dir);
    const migrate = () => cli(single.dir, single.config, ['keys', 'migrate', '--to', url, '--encryption-key-file', kek]);
    const first = ok(await migrate()).stdout;
    assert.match(first, /keys: 3 \(3 new, 0 already there\)/);
    assert.match(first, /events \(history\): 6 \(6 new, 0 already there\)/);
    assert.match(first, /DNS observations: 1 \(1 new, 0 already there\)/);
    assert.match(first, /notifications: 1 \(1 new, 0 already there\)/);
    assert.match(first, /DMARC aggregate reports: 2 \(2 new, 0 already there\)/);
    assert.match(first, /verified 3 keys/);
    const again = ok(await migrate()).stdout;
    assert.match(again, /keys: 3 \(0 new, 3 already there\)/);
    assert.match(again, /events \(history\): 6 \(0 new, 6 already there\)/);
    assert.match(again, /DMARC aggregate reports: 2 \(0 new, 2 already there\)/);
    const recordCount = GOOGLE.rows.length + YAHOO.rows.length;
    assert.equal((await cluster.psql('fleet', 'SELECT count(*) FROM dmarc_reports')).trim(), '2');
    assert.equal((await cluster.psql('fleet', 'SELECT count(*) FROM dmarc_records')).trim(), String(recordCount));
    assert.equal(
      (await cluster.psql('fleet', `SELECT sum(count) FROM dmarc_records c JOIN dmarc_reports r ON r.id = c.report WHERE r.org_name = 'Yahoo'`)).trim(),
      String(YAHOO.rows.reduce((n, r) => n + r.count, 0)),
    );
    assert.equal((await cluster.psql('fleet', 'SELECT count(*) FROM keys')).trim(), '3');
    assert.equal((await cluster.psql('fleet', 'SELECT count(*) FROM events')).trim(), '6');
    assert.equal((await cluster.psql('fleet', 'SELECT server, last_state FROM dns_observations')).trim(), '192.0.2.53|matching');

    // A dump alone reveals no private key: no PEM, no key bytes in any encoding pg_dump uses.
    const dump = await cluster.dump('fleet');
    const select = await cluster.psql('fleet', 'SELECT * FROM keys');
    // bytea comes out as hex: the PEM's own bytes are looked for in hex too.
    const hex = (text: string) => Buffer.from(text).toString('hex');
    for (const text of [dump, select]) {
      assert.ok(!text.includes(PRIVATE_ARMOUR) && !text.includes(hex(PRIVATE_ARMOUR)), 'a PEM private key in the database');
      for (const pem of pems) {
        const der = createPrivateKey(pem).export({ type: 'pkcs8', format: 'der' });
        assert.ok(!text.includes(der.toString('hex')), 'the key bytes (hex) in the database');
        assert.ok(!text.includes(der.toString('base64').slice(40, 120)), 'the key bytes (base64) in the database');
        assert.ok(!text.includes(hex(der.toString('base64').slice(40, 120))), 'the PEM body (as bytea hex) in the database');
      }
    }
    assert.match(select, /\|sealed\|\\x01/); // sealed, format 1

    // Two relays on the shared store, started at once; each signs, dkimpy verifies.
    const nodes = [0, 1].map(() => relayDir(`{dir: KEYS, database: "${url}", encryptionKeyFile: ${kek}}`));
    for (const n of nodes) writeFileSync(n.config, readFileSync(n.config, 'utf8').replace('KEYS', join(n.dir, 'keys')));
    relays.push(...(await Promise.all(nodes.map((n) => serve(['--config', n.config], n.dir)))));
    const records = await publishedRecords(url, kek, nodes[0]!.dir);
    for (const relay of relays) {
      for (const from of ['a@example.com', 'b@example.org']) {
        const before = sink.received.length;
        const result = await send({
          port: relay.port(),
          from,
          to: ['x@example.net'],
          raw: `From: ${from}\r\nTo: x@example.net\r\nSubject: fleet\r\n\r\nsigned from PostgreSQL\r\n`,
        });
        assert.ok(result.ok, result.response);
        const message = sink.received[before]!.raw;
        assert.match(
          message.toString(),
          from.endsWith('example.com') ? /^DKIM-Signature: .*\sd=example\.com;\s+s=new;/m : /^DKIM-Signature: .*\sd=example\.org;\s+s=s\d+a;/m,
        );
        assert.deepEqual(await verifyWithDkimpy(message, records), [true], `dkimpy verdict for ${from}`);
      }
    }
    for (const r of relays.splice(0)) {
      r.child.kill('SIGTERM');
      await r.exited;
    }

    // keys rewrap: every key sealed under the new key-encryption key in one transaction.
    const node = nodes[0]!;
    const newKek = kekFile(node.dir, 'kek.new');
    const rewrapped = ok(await cli(node.dir, node.config, ['keys', 'rewrap', '--new-key-file', newKek])).stdout;
    assert.match(rewrapped, /^3 private keys in postgresql:\/\/dkim@localhost\/fleet.* are now sealed under /m);
    // The old key-encryption key opens nothing any more; the new one opens every key.
    const withOld = await openKeyStore({ dir: join(node.dir, 'keys'), database: url, encryptionKeyFile: kek }, { refreshMs: 0 });
    try {
      assert.throws(() => withOld.activeKeys('example.com'), /does not open with this key-encryption key/);
    } finally {
      await withOld.close();
    }
    writeFileSync(node.config, readFileSync(node.config, 'utf8').replace(`encryptionKeyFile: ${kek}`, `encryptionKeyFile: ${newKek}`));
    const relay = await serve(['--config', node.config], node.dir);
    relays.push(relay);
    const before2 = sink.received.length;
    const result = await send({
      port: relay.port(),
      from: 'c@example.com',
      to: ['x@example.net'],
      raw: 'From: c@example.com\r\nTo: x@example.net\r\nSubject: after rewrap\r\n\r\nstill signed\r\n',
    });
    assert.ok(result.ok, result.response);
    assert.deepEqual(await verifyWithDkimpy(sink.received[before2]!.raw, records), [true]);
    // Its history came along: the revocation of old, as the SQLite store recorded it.
    const history = ok(await cli(node.dir, node.config, ['keys', 'history', '--domain', 'example.com', '--json'])).stdout;
    assert.deepEqual(
      (JSON.parse(history) as { selector: string; to: string }[]).filter((e) => e.selector === 'old').map((e) => e.to),
      ['active', 'retiring', 'revoked'],
    );
  });

  test('two relays migrating one fresh database at once: both start, the schema is made once', async () => {
    const url = await cluster.createDatabase('together');
    const kek = kekFile(tempDir());
    const nodes = [0, 1, 2].map(() => relayDir(`{dir: KEYS, database: "${url}", encryptionKeyFile: ${kek}}`));
    for (const n of nodes) writeFileSync(n.config, readFileSync(n.config, 'utf8').replace('KEYS', join(n.dir, 'keys')));
    const runs = await Promise.all(nodes.map((n) => dkimRelay(['--config', n.config, 'keys', 'list'], n.dir)));
    for (const run of runs) ok(run);
    // `status` on a relay of the fleet that has never served: its keys from the shared store.
    ok(await dkimRelay(['--config', nodes[0]!.config, 'keys', 'generate', '--domain', 'example.com', '--algorithm', 'ed25519', '--activate'], nodes[0]!.dir));
    const status = ok(await dkimRelay(['--config', nodes[1]!.config, 'status', '--no-dns'], nodes[1]!.dir)).stdout;
    assert.match(status, /example\.com/);
    assert.equal((await cluster.psql('together', `SELECT name, version FROM schema_versions`)).trim(), `keys|${PG_LATEST_VERSION}`);
    assert.equal((await cluster.psql('together', `SELECT generation FROM store_generation`)).trim(), '1');
  });

  test('a decommissioned relay is forgotten: by `keys fleet forget`, and by itself two weeks after its last heartbeat', async () => {
    const url = await cluster.createDatabase('forget');
    const kek = kekFile(tempDir());
    const node = relayDir(`{dir: KEYS, database: "${url}", encryptionKeyFile: ${kek}}`);
    writeFileSync(node.config, readFileSync(node.config, 'utf8').replace('KEYS', join(node.dir, 'keys')));
    const cli = (args: string[]) => dkimRelay(['--config', node.config, ...args], node.dir);
    ok(await cli(['keys', 'list']));
    const ago = (ms: number) => new Date(Date.now() - ms).toISOString();
    const DAY = 24 * 3600_000;
    const heartbeat = (name: string, address: string, ms: number) => `('${name}', '1.0.0', '${address}', 0, '${ago(ms)}', '${ago(ms)}')`;
    await cluster.psql(
      'forget',
      `INSERT INTO fleet_nodes (name, version, address, generation, loaded_at, last_contact) VALUES
       ${heartbeat('long-gone', '192.0.2.1:25', 15 * DAY)}, ${heartbeat('gone', '192.0.2.2:25', 8 * DAY)},
       ${heartbeat('quiet', '192.0.2.3:25', 60_000)}, ${heartbeat('quiet', '192.0.2.4:25', 60_000)}, ${heartbeat('live', '192.0.2.5:25', 0)}`,
    );
    const names = async () => (await cluster.psql('forget', `SELECT name || ' ' || address FROM fleet_nodes ORDER BY name, address`)).trim().split('\n');

    // A relay running on the store forgets, as it starts, the heartbeat silent for more than two weeks; the one gone for a week stays listed.
    const relay = await serve(['--config', node.config], node.dir);
    relays.push(relay);
    await until('the two-week-old heartbeat forgotten', async () => !(await names()).includes('long-gone 192.0.2.1:25'), { timeoutMs: 10_000 });
    assert.ok((await names()).includes('gone 192.0.2.2:25'));

    refused(
      await cli(['keys', 'fleet', 'forget', 'live']),
      /^dkim-relay: relay live \(192\.0\.2\.5:25\) was heard from .*: it is running.* — stop it for good first/,
    );
    refused(await cli(['keys', 'fleet', 'forget', 'nosuch']), /^dkim-relay: no relay nosuch in the fleet — the fleet lists: .*quiet \(192\.0\.2\.3:25\)/);
    const one = ok(await cli(['keys', 'fleet', 'forget', 'quiet', '--address', '192.0.2.4:25'])).stdout;
    assert.match(one, /^forgot quiet \(192\.0\.2\.4:25\), last heard from /m);
    const all = JSON.parse(ok(await cli(['keys', 'fleet', 'forget', 'gone', '--json'])).stdout) as { forgotten: { name: string; address: string }[] };
    assert.deepEqual(
      all.forgotten.map((n) => `${n.name} ${n.address}`),
      ['gone 192.0.2.2:25'],
    );
    const left = await names();
    assert.deepEqual(
      left.filter((n) => !n.startsWith('live ') && !n.includes('127.0.0.1')),
      ['quiet 192.0.2.3:25'],
    );

    // A relay on its own SQLite store has no fleet.
    const single = relayDir(`{dir: ${join(tempDir(), 'keys')}}`);
    ok(await dkimRelay(['--config', single.config, 'keys', 'generate', '--domain', 'example.com', '--algorithm', 'ed25519'], single.dir));
    refused(
      await dkimRelay(['--config', single.config, 'keys', 'fleet', 'forget', 'x'], single.dir),
      /^dkim-relay: keys fleet forget applies to a PostgreSQL key store/,
    );
  });

  test('settings refused in one line, never showing a password', async () => {
    const url = await cluster.createDatabase('settings');
    const base = tempDir();
    const kek = kekFile(base);
    const secret = 'Zq9-not-for-logs';
    const check = async (keys: string, args: string[] = ['keys', 'list'], rotation = 'off') => {
      const { dir, config } = relayDir(keys, rotation);
      const run = await dkimRelay(['--config', config, ...args], dir);
      assert.ok(!run.stderr.includes(secret) && !run.stdout.includes(secret), `the password shown:\n${run.stderr}`);
      return run;
    };
    const withPassword = url.replace('dkim@', `dkim:${secret}@`);
    refused(
      await check(`{database: "${withPassword}", encryptionKeyFile: ${kek}}`, ['config', 'check']),
      /keys\.database.*must not hold a password.*keys\.passwordFile/s,
    );
    refused(await check(`{database: "${url}"}`, ['config', 'check']), /keys\.encryptionKeyFile.*is required with keys\.database/s);
    refused(await check(`{encryptionKeyFile: ${kek}}`, ['config', 'check']), /keys\.encryptionKeyFile.*applies only with keys\.database/s);

    const passwordFile = join(base, 'password');
    writeFileSync(passwordFile, `${secret}\n`, { mode: 0o600 });
    const missing = url.replace('/settings?', '/nosuchdb?');
    refused(
      await check(`{database: "${missing}", passwordFile: ${passwordFile}, encryptionKeyFile: ${kek}}`),
      /the key store postgresql:\/\/dkim@localhost\/nosuchdb.* does not exist/,
    );
    chmodSync(passwordFile, 0o644);
    refused(
      await check(`{database: "${url}", passwordFile: ${passwordFile}, encryptionKeyFile: ${kek}}`),
      /keys\.passwordFile .* is readable by others \(mode 0644\).*chmod 600/,
    );
    chmodSync(kek, 0o640);
    refused(await check(`{database: "${url}", encryptionKeyFile: ${kek}}`), /keys\.encryptionKeyFile .* is readable by others \(mode 0640\)/);
    const short = join(base, 'short');
    writeFileSync(short, 'c2hvcnQ=\n', { mode: 0o600 });
    refused(await check(`{database: "${url}", encryptionKeyFile: ${short}}`), /does not hold 32 bytes in base64.*openssl rand -base64 32/);
  });
});

/** Every live key's TXT record, as the store publishes it, for dkimpy. */
async function publishedRecords(url: string, kek: string, dir: string): Promise<Record<string, string>> {
  const store = await openKeyStore({ dir: join(dir, 'keys'), database: url, encryptionKeyFile: kek }, { refreshMs: 0 });
  try {
    const records: Record<string, string> = {};
    for (const key of store.list()) {
      const name = `${key.selector}._domainkey.${key.domain}`;
      const value = store.publishedValue(name);
      if (value) records[name] = value;
    }
    return records;
  } finally {
    await store.close();
  }
}
