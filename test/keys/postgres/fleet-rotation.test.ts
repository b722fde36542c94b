// Scheduled rotation across a fleet, end to end over real DNS: three `serve`
// processes on one private PostgreSQL store, short rotation times, the zone
// served by Knot DNS on port 53 of a loopback address of its own (so each
// relay finds it through the zone's NS record, as in production) and updated
// by the rotation's leader through RFC 2136. Whoever leads (the leader is
// killed mid-rotation), each step is taken once: one history row per step. Mail relayed through every relay
// before and after each step carries the selector it must, and dkimpy
// verifies it, fetching the key from Knot.
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openKeyStore } from '../../../src/keys/open-store.ts';
import { txtRecord } from '../../../src/keys/record.ts';
import { verifyWithDkimpyDns } from '../../helpers/dns-verify.ts';
import { startKnotPrimary, type KnotPrimary } from '../../helpers/knot-primary.ts';
import { dkimFields, send, startSink, type Sink } from '../../helpers/relay-harness.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { skipWithout } from '../../helpers/tools.ts';
import { until } from '../../helpers/until.ts';
import { dkimRelay, serve, type Served } from '../../cli/support.ts';
import { postgresOrSkip, startPgCluster, type PgCluster } from './pg-cluster.ts';
import { forgetOnceSilent, healthNote, kekFile } from './support.ts';

const ZONE = 'fleet.test';
/** Every two seconds, as in fleet-serve.test.ts: a lease of two seconds, renewed every 0.67 s. */
const CHECK = '*/2 * * * * *';
/**
 * The first rotation starts this long after the first key was activated (longer than the relays take to
 * start); the new key waits publishFor, time enough to see that it does not sign while pending.
 */
const ROTATION = { interval: '30s', publishFor: '10s', retireAfter: '6s', removeAfter: '4s' };
/** The most any one step may take: its time, plus a few checks on a busy machine. */
const STEP_MS = 30_000;

// Port 53 needs root (CI runs as root).
const skip = postgresOrSkip().skip || skipWithout('knotd') || (process.getuid?.() === 0 ? undefined : 'Knot on port 53 needs root');

describe('scheduled rotation across a fleet of three relays, over DNS served by Knot', { skip }, () => {
  let cluster: PgCluster;
  let knot: KnotPrimary;
  let sink: Sink;
  const relays: Served[] = [];
  /** The pid of each relay seen holding the rotation lease. */
  const leaders = new Set<string>();

  before(async () => {
    cluster = await startPgCluster();
    sink = await startSink();
    const url = await cluster.createDatabase('rotation');
    const base = tempDir();
    const kek = kekFile(base);
    // The first key, made as `keys generate --activate` makes it, and already in the zone when the relays start.
    const store = await openKeyStore({ dir: join(base, 'keys'), database: url, encryptionKeyFile: kek }, { refreshMs: 0 });
    let first;
    try {
      first = await store.generate({ domain: ZONE, selector: 's1', algorithm: 'rsa', bits: 1024, activate: true });
    } finally {
      await store.close();
    }
    const record = txtRecord(first);
    // Port 53, where a relay asks the servers named by the NS record, on a loopback address no other test uses.
    const host = `127.53.${randomInt(1, 255)}.${randomInt(1, 255)}`;
    knot = await startKnotPrimary({ [ZONE]: [`${record.name}. 300 IN TXT ${record.strings.map((s) => `"${s}"`).join(' ')}`] }, { listen: { host, port: 53 } });
    const secretFile = join(base, 'tsig.key');
    writeFileSync(secretFile, knot.tsig.secret, { mode: 0o600 });
    const dirs = [0, 1, 2].map(() => tempDir());
    configs = dirs.map((dir) => {
      const file = join(dir, 'relay.yaml');
      writeFileSync(
        file,
        `keys: {dir: ${join(dir, 'keys')}, database: "${url}", encryptionKeyFile: ${kek}}\nmetrics: {listen: "127.0.0.1:0"}\nlisten: {port: 0}\n` +
          `rotation: {check: "${CHECK}", interval: ${ROTATION.interval}, publishFor: ${ROTATION.publishFor}, retireAfter: ${ROTATION.retireAfter}, removeAfter: ${ROTATION.removeAfter}}\n` +
          `dns: {timeoutSeconds: 1, resolvers: ["${knot.address}"], publish: [{zone: ${ZONE}, method: rfc2136, server: "${knot.address}", tsig: {name: ${knot.tsig.name}, algorithm: ${knot.tsig.algorithm}, secretFile: ${secretFile}}}]}\n` +
          `delivery: {mode: sync, upstream: {type: smtp, host: 127.0.0.1, port: ${sink.port}}}\nqueue: {dir: ${join(dir, 'queue')}}\n`,
      );
      return file;
    });
    relays.push(...(await Promise.all(dirs.map((dir, i) => serve(['--config', configs[i]!], dir)))));
    configDirs = dirs;
  });

  after(async () => {
    for (const r of relays) r.kill();
    await sink?.close();
    await knot?.stop();
    await cluster?.stop();
  });

  const psql = (sql: string) => cluster.psql('rotation', sql);
  let configs: string[] = [];
  let configDirs: string[] = [];
  /** The history rows of the steps: "selector to_state by", oldest first. */
  const history = async () => (await psql(`SELECT selector || ' ' || to_state || ' ' || "by" FROM events ORDER BY id`)).trim().split('\n');
  const timedHistory = async () => (await psql(`SELECT selector || ' ' || to_state || ' ' || "at" FROM events ORDER BY id`)).trim().split('\n');
  const step = async (what: string, row: RegExp) => {
    let found: string | undefined;
    await until(
      what,
      async () => {
        leaders.add((await psql(`SELECT holder FROM leases WHERE name = 'rotation'`)).trim().split('/')[1] ?? '');
        found = (await history()).find((r) => row.test(r));
        return found !== undefined;
      },
      { timeoutMs: STEP_MS, everyMs: 500 },
    );
    return found!;
  };
  /** Once every relay holds the key set as it is now in the store. */
  const everyRelayCurrent = async () => {
    const generation = Number((await psql('SELECT generation FROM store_generation')).trim());
    for (const r of relays) {
      await until('the relay on the new key set', async () => Number(/generation (\d+) /.exec(await healthNote(r))?.[1] ?? -1) >= generation, {
        timeoutMs: 10_000,
      });
    }
  };
  /** Mail through every relay: each signature made with `selector`, and passing dkimpy with the key Knot serves. */
  const mailSignedWith = async (selector: string, when: string) => {
    // Sent first, verified after: the sending is quick, so all of it falls before the next step.
    const signed: Buffer[] = [];
    for (const [i, relay] of relays.entries()) {
      const before = sink.received.length;
      const reply = await send({
        port: relay.port(),
        from: `alice@${ZONE}`,
        to: ['bob@example.net'],
        raw: `From: Alice <alice@${ZONE}>\r\nTo: bob@example.net\r\nSubject: ${when} via relay ${i}\r\n\r\nHello through the fleet's rotation.\r\n`,
      });
      assert.ok(reply.ok, `relay ${i} refused: ${reply.response}`);
      signed.push(sink.received[before]!.raw);
    }
    for (const [i, raw] of signed.entries()) {
      const fields = dkimFields(raw);
      assert.equal(fields.length, 1, `relay ${i}: one signature`);
      const signedWith = /\bs=([^;\s]+)/.exec(fields[0]!)![1];
      if (signedWith !== selector) assert.fail(`${when}: relay ${i} signs with ${signedWith}, not ${selector}; history: ${(await timedHistory()).join('; ')}`);
      assert.deepEqual(
        (await verifyWithDkimpyDns(raw, knot.address)).map((v) => v.result),
        ['pass'],
        `${when}: dkimpy over DNS, relay ${i}`,
      );
    }
  };
  const served = async (selector: string) => knot.txt(`${selector}._domainkey.${ZONE}`);

  test('rotate, activate, revoke, remove: each once, whoever leads; mail through every relay signed as it must be', async (t) => {
    const started = performance.now();
    await mailSignedWith('s1', 'before the rotation');

    // The rotation starts: a new key, pending, published in the zone by the leader; mail is still signed with s1.
    const created = await step('the new key', /^\S+ pending scheduler$/);
    const next = created.split(' ')[0]!;
    await until('the new key served by Knot', async () => (await served(next)).length === 1, { timeoutMs: STEP_MS, everyMs: 500 });
    await everyRelayCurrent();
    await mailSignedWith('s1', `${next} pending`);

    // Knot has served it for publishFor: it signs, s1 retires.
    await step('the new key active', new RegExp(`^${next} active scheduler$`));
    await everyRelayCurrent();
    await mailSignedWith(next, `${next} active`);

    // The leader dies mid-rotation: another relay takes the lease over and takes the remaining steps.
    const holder = (await psql(`SELECT holder FROM leases WHERE name = 'rotation'`)).trim();
    const leader = relays.find((r) => holder.includes(`/${r.child.pid}/`));
    assert.ok(leader, `no relay holds the lease (${holder})`);
    leader.child.kill('SIGKILL');
    await leader.exited;
    relays.splice(relays.indexOf(leader), 1);

    // retireAfter later, s1 is revoked: its record is served with an empty p=.
    const revoked = step('s1 revoked', /^s1 revoked scheduler$/);
    const forgetting = forgetOnceSilent(
      psql,
      `127.0.0.1:${leader.port()}`,
      (name, address) => dkimRelay(['--config', configs[0]!, 'keys', 'fleet', 'forget', name, '--address', address], configDirs[0]!),
      revoked,
    );
    await revoked;
    await forgetting;
    await until('s1 served revoked', async () => (await served('s1')).some((v) => /(^|;)\s*p=\s*(;|$)/.test(v)), { timeoutMs: STEP_MS, everyMs: 500 });
    await everyRelayCurrent();
    await mailSignedWith(next, 's1 revoked');

    // removeAfter later, it is removed and its record withdrawn.
    await step('s1 removed', /^s1 removed scheduler$/);
    await until('s1 withdrawn from the zone', async () => (await served('s1')).length === 0, { timeoutMs: STEP_MS, everyMs: 500 });
    await everyRelayCurrent();
    await mailSignedWith(next, 's1 removed');

    // One history row per step, though three relays planned each of them: one new key until it signed, no other.
    const all = await history();
    assert.deepEqual(
      all.slice(0, all.indexOf(`${next} active scheduler`)).filter((r) => r.endsWith(' pending scheduler')),
      [`${next} pending scheduler`],
    );
    const rows = all.filter((r) => r.startsWith('s1 ') || r.startsWith(`${next} `));
    assert.deepEqual(rows.slice(1), [
      `${next} pending scheduler`,
      's1 retiring scheduler',
      `${next} active scheduler`,
      's1 revoked scheduler',
      's1 removed scheduler',
    ]);
    assert.match(rows[0]!, /^s1 active /, 'the first key as made before the relays started');
    assert.ok(leaders.size >= 2, `the lease changed hands: ${[...leaders].join(', ')}`);
    t.diagnostic(`the rotation's steps took ${((performance.now() - started) / 1000).toFixed(1)} s; lease holders seen: pids ${[...leaders].join(', ')}`);
  });
});
