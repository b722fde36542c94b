// Three `serve` processes sharing one private PostgreSQL, each with its own
// port, spool and keys.dir: a key activated reaches every relay within a
// second (LISTEN/NOTIFY), one relay runs the rotation and another takes over
// when it dies, and the database going away under load never stops mail.
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { KeyStore } from '../../../src/keys/key-store.ts';
import { openKeyStore } from '../../../src/keys/open-store.ts';
import { verifyWithDkimpy } from '../../helpers/independent-verify.ts';
import { dkimFields, send, startSink, type Sink } from '../../helpers/relay-harness.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { dkimRelay, serve, type Run, type Served } from '../../cli/support.ts';
import { postgresOrSkip, startPgCluster, type PgCluster } from './pg-cluster.ts';
import { healthNote, kekFile, metricsPort } from './support.ts';

/** Every two seconds: the lease lasts two, renewed every 0.67 s, so a dead leader is replaced within four. */
const CHECK = '*/2 * * * * *';
const CHECK_MS = 2000;

function ok(run: Run): Run {
  assert.equal(run.code, 0, `exit ${run.code}\n${run.stderr}`);
  return run;
}

interface Node {
  dir: string;
  config: string;
  relay: Served;
}

/** The query type of a DNS query (RFC 1035 §4.1.2): after the 12-byte header and the question's name. */
function queryType(packet: Buffer): number {
  let at = 12;
  while (at < packet.length && packet[at] !== 0) at += packet[at]! + 1;
  return packet.readUInt16BE(at + 1);
}

/**
 * A resolver that never answers (dns.resolvers): the leader waits in its DNS
 * observation for dns.timeoutSeconds, and each zone lookup it sends (NS, SOA;
 * the DMARC readiness asks TXT) tells the test that the leader is mid-pass.
 */
async function blackHoleDns(): Promise<{ port: number; socket: Socket; nextZoneQuery: () => Promise<void> }> {
  const socket = createSocket('udp4');
  const waiting = new Set<() => void>();
  socket.on('message', (packet) => {
    if (![2, 6].includes(queryType(packet))) return;
    for (const w of waiting) w();
    waiting.clear();
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { port: socket.address().port, socket, nextZoneQuery: () => new Promise((resolve) => waiting.add(resolve)) };
}

async function readyz(relay: Served): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${metricsPort(relay)}/readyz`, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: await res.text() };
}

/** Polls `probe` every 10 ms until it holds; the time it took (ms). */
async function until(what: string, probe: () => Promise<boolean>, ms = 20_000): Promise<number> {
  const start = performance.now();
  for (let i = 0; performance.now() - start < ms; i++) {
    if (await probe()) return performance.now() - start;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

describe('a fleet of three relays on one PostgreSQL store', postgresOrSkip(), () => {
  let cluster: PgCluster;
  let sink: Sink;
  let url: string;
  let kek: string;
  let dns: Awaited<ReturnType<typeof blackHoleDns>>;
  const nodes: Node[] = [];
  const lease = async () => {
    const [holder, epoch] = (await cluster.psql('fleet', `SELECT holder, epoch FROM leases WHERE name = 'rotation'`)).trim().split('|');
    return { holder: holder ?? '', epoch: Number(epoch) };
  };
  const leaderOf = (holder: string) => nodes.find((n) => holder.includes(`/${n.relay.child.pid}/`));

  const config = (dir: string) => {
    const file = join(dir, 'relay.yaml');
    writeFileSync(
      file,
      `keys: {dir: ${join(dir, 'keys')}, database: "${url}", encryptionKeyFile: ${kek}}\nmetrics: {listen: "127.0.0.1:0"}\nlisten: {port: 0}\n` +
        `rotation: {check: "${CHECK}"}\ndns: {timeoutSeconds: 1, resolvers: ["127.0.0.1:${dns.port}"]}\n` +
        `delivery: {mode: sync, upstream: {type: smtp, host: 127.0.0.1, port: ${sink.port}}}\nqueue: {dir: ${join(dir, 'queue')}}\n`,
    );
    return file;
  };
  const cli = (args: string[]) => dkimRelay(['--config', nodes[0]!.config, ...args], nodes[0]!.dir);
  const start = async (node: Omit<Node, 'relay'>) => ({ ...node, relay: await serve(['--config', node.config], node.dir) });

  before(async () => {
    cluster = await startPgCluster();
    sink = await startSink();
    dns = await blackHoleDns();
    url = await cluster.createDatabase('fleet');
    kek = kekFile(tempDir());
    const dirs = [0, 1, 2].map(() => tempDir());
    const first = { dir: dirs[0]!, config: config(dirs[0]!) };
    ok(
      await dkimRelay(['--config', first.config, 'keys', 'generate', '--domain', 'example.com', '--selector', 's1', '--bits', '1024', '--activate'], first.dir),
    );
    nodes.push(...(await Promise.all(dirs.map((dir) => start({ dir, config: config(dir) })))));
  });
  after(async () => {
    for (const n of nodes) n.relay.kill();
    await sink?.close();
    dns?.socket.close();
    await cluster?.stop();
  });

  test('(a) a key activated reaches every relay within a second', async (t) => {
    ok(await cli(['keys', 'generate', '--domain', 'example.com', '--selector', 's2', '--bits', '1024']));
    const generation = Number((await cluster.psql('fleet', 'SELECT generation FROM store_generation')).trim());
    for (const n of nodes) await until('every relay on the pending key', async () => (await healthNote(n.relay)).includes(`generation ${generation} `));
    // Activated from here, as `keys activate` does, so the time is measured from the write itself.
    const seen = await changeSeenAfter((store) => store.activate('example.com', 's2'));
    const spread = Math.max(...seen) - Math.min(...seen);
    t.diagnostic(`activation seen by the three relays after ${seen.map((s) => s.toFixed(0)).join(', ')} ms; spread ${spread.toFixed(0)} ms`);
    for (const ms of seen) assert.ok(ms < 1000, `seen after ${ms} ms`);
  });

  test('(c) SIGSTOP the leader mid-pass past its lease, SIGCONT: its late write is refused by the epoch', async () => {
    await until('a leader', async () => leaderOf((await lease()).holder) !== undefined);
    const before = await lease();
    const leader = leaderOf(before.holder)!;
    const since = leader.relay.output().length;
    // Stopped while it waits for DNS in a pass, after it took the lease and before it writes what it saw.
    await dns.nextZoneQuery();
    assert.ok(leader.relay.child.kill('SIGSTOP'));
    try {
      await until('a takeover', async () => (await lease()).epoch > before.epoch, 10 * CHECK_MS);
    } finally {
      leader.relay.child.kill('SIGCONT');
    }
    await leader.relay.waitFor('rotation write refused', 15_000, since);
    const refusal = leader.relay
      .output()
      .slice(since)
      .split('\n')
      .find((l) => l.includes('rotation write refused'))!;
    const { epoch, current } = JSON.parse(refusal) as { epoch: number; current: number };
    assert.equal(epoch, before.epoch, 'the write carried the epoch the paused leader held');
    assert.ok(current > before.epoch, 'and was refused for the newer one');
    assert.equal(leader.relay.output().slice(since).includes('"rotation":"fenced"'), true);
  });

  test('(b) SIGKILL the leader: another takes the lease over within two checks, at a higher epoch', async () => {
    await until('a leader', async () => leaderOf((await lease()).holder) !== undefined);
    const before = await lease();
    const leader = leaderOf(before.holder)!;
    assert.ok(leader, `no relay holds ${before.holder}`);
    leader.relay.child.kill('SIGKILL');
    await leader.relay.exited;
    // A step falls due with no leader: s1 (retiring since s2 was activated) retired long ago, so it is to be revoked.
    await cluster.psql(
      'fleet',
      `UPDATE keys SET retired_at = '2000-01-01T00:00:00.000Z' WHERE selector = 's1' AND state = 'retiring';
       UPDATE store_generation SET generation = generation + 1; SELECT pg_notify('dkim_relay_keys', 'test')`,
    );
    const took = await until('a takeover', async () => (await lease()).epoch > before.epoch, 10 * CHECK_MS);
    console.log(`# takeover ${took.toFixed(0)} ms after SIGKILL (two checks: ${2 * CHECK_MS} ms)`);
    assert.ok(took <= 2 * CHECK_MS + 1000, `took ${took} ms`);
    const after = await lease();
    assert.notEqual(after.holder, before.holder);
    const revoked = () => cluster.psql('fleet', `SELECT "by" FROM events WHERE selector = 's1' AND to_state = 'revoked'`);
    await until('the revocation', async () => (await revoked()).trim() !== '', 10 * CHECK_MS);
    // Two more passes of the leader (each asks DNS for the zone first; the others never get that far) do not repeat it.
    await dns.nextZoneQuery();
    await dns.nextZoneQuery();
    assert.equal((await revoked()).trim(), 'scheduler', 'one history row: the step was taken once');
    nodes.splice(nodes.indexOf(leader), 1, await start({ dir: leader.dir, config: leader.config }));
  });

  test('(d) PostgreSQL stopped under 200 messages: every one signed, none refused, and the relays see it back', async () => {
    const records = await publishedRecords();
    const before = sink.received.length;
    // Ten at a time across the relays: listen.maxClientsPerIp allows each one client address a few sessions at once.
    const sendAll = async (from: number, count: number) => {
      const results = [];
      for (let i = from; i < from + count; i += 10) {
        results.push(
          ...(await Promise.all(
            Array.from({ length: 10 }, (_, j) =>
              send({
                port: nodes[(i + j) % nodes.length]!.relay.port(),
                from: 'a@example.com',
                to: ['x@example.net'],
                raw: `From: a@example.com\r\nTo: x@example.net\r\nSubject: load ${i + j}\r\n\r\nsigned while the store is away\r\n`,
              }),
            ),
          )),
        );
      }
      return results;
    };
    await cluster.pause();
    for (const n of nodes) await until('the store seen away', async () => (await healthNote(n.relay)).includes('unreachable since'));
    const ready = await readyz(nodes[0]!.relay);
    assert.equal(ready.status, 200);
    assert.match(ready.body, /^ready\nkey store unreachable for \d+s \(signing with the keys held; rotation paused\)\n$/);
    const page = await (await fetch(`http://127.0.0.1:${metricsPort(nodes[0]!.relay)}/`, { signal: AbortSignal.timeout(5000) })).text();
    assert.match(
      page,
      /<p id="fleet-store">Key generation \d+ · <span class="attention">! the key store has not answered since [^<]*: signing with the keys held, rotation paused<\/span><\/p>/,
    );
    const results = await sendAll(0, 200);
    const refused = results.filter((r) => !r.ok);
    assert.deepEqual(refused, [], 'every message taken');
    const received = sink.received.slice(before);
    assert.equal(received.length, 200);
    for (const m of received) assert.ok(dkimFields(m.raw).length > 0, 'a message left unsigned');
    // dkimpy over every 20th message, against the records the store publishes (no DNS server here).
    for (const m of received.filter((_, i) => i % 20 === 0)) assert.ok((await verifyWithDkimpy(m.raw, records)).every(Boolean), 'dkimpy: signature fails');
    // A relay started while the store is away has no keys: it starts all the same and defers mail, never sends it unsigned.
    const dir = tempDir();
    const late = await start({ dir, config: config(dir) });
    nodes.push(late);
    const mail = (i: number) => ({
      port: late.relay.port(),
      from: 'a@example.com',
      to: ['x@example.net'],
      raw: `From: a@example.com\r\nTo: x@example.net\r\nSubject: late ${i}\r\n\r\nno keys yet\r\n`,
    });
    const deferred = await send(mail(0));
    assert.equal(deferred.ok, false);
    assert.match(deferred.response, /^451 4\.3\.0 /);
    assert.match(await healthNote(late.relay), /unreachable since .*no keys loaded yet/);
    const notReady = await readyz(late.relay);
    assert.equal(notReady.status, 503);
    assert.match(notReady.body, /^no keys loaded yet: key store unreachable for \d+s; mail is deferred \(451\)\n$/);

    await cluster.resume();
    for (const n of nodes) await until('the store seen back, subscribed again', async () => (await healthNote(n.relay)).endsWith('changes pushed'), 30_000);
    const signed = await send(mail(1));
    assert.ok(signed.ok, signed.response);
    assert.ok(dkimFields(sink.received.at(-1)!.raw).length > 0, 'the late relay signs once the store answers');
    // Subscribed again: a change reaches every relay within a second, not at the next 5-second poll.
    const seen = await changeSeenAfter((store) => store.generate({ domain: 'example.com', selector: 's3', algorithm: 'ed25519' }));
    console.log(`# after the restart, a change seen by the relays after ${seen.map((s) => s.toFixed(0)).join(', ')} ms`);
    for (const ms of seen) assert.ok(ms < 1000, `seen after ${ms} ms`);
  });

  test('(e) status lists the fleet: each relay current, the one killed in (b) not heard from; the metrics count them', async () => {
    const generation = Number((await cluster.psql('fleet', 'SELECT generation FROM store_generation')).trim());
    const live = nodes.map((n) => `127.0.0.1:${n.relay.port()}`);
    type Fleet = { generation: number; nodes: { address: string; state: string; generation: number }[] };
    const status = async () => {
      const run = await cli(['status', '--no-dns', '--json']);
      return { code: run.code, ...(JSON.parse(run.stdout.replace(/^[^{]*/, '')) as { ok: boolean; fleet: Fleet }) };
    };
    // The relay SIGKILLed in (b) wrote its last heartbeat then; it is "silent" once three are missed.
    const report = await (async () => {
      let last: Awaited<ReturnType<typeof status>> | undefined;
      await until(
        'the killed relay reported silent',
        async () => {
          last = await status();
          return last.fleet.nodes.some((n) => n.state === 'silent');
        },
        30_000,
      );
      return last!;
    })();
    assert.equal(report.fleet.generation, generation);
    for (const address of live) assert.equal(report.fleet.nodes.find((n) => n.address === address)?.state, 'current', address);
    assert.equal(report.ok, false, 'a relay not heard from needs a person');
    assert.equal(report.code, 1, 'and status says so by its exit');
    const text = await cli(['status', '--no-dns']);
    assert.match(text.stdout, /^! \S+  127\.0\.0\.1:\d+  \S+  not heard from since /m);
    assert.equal(text.code, 1);
    assert.match(text.stderr, /need a person: .*the fleet \(see above\)/);

    const line = nodes[0]!.relay
      .output()
      .split('\n')
      .filter((l) => l.includes('"relay listening"'))
      .at(-1)!;
    // A relay's metrics show the fleet as of its last look at the store (every 5 s): wait for the look after the last change.
    const url = `http://127.0.0.1:${(JSON.parse(line) as { metrics: number }).metrics}/metrics`;
    const currentLine = new RegExp(`^dkim_relay_fleet_nodes\\{state="current"\\} ${live.length}$`, 'm');
    let metrics = '';
    await until(
      'the relay has seen every live relay current',
      async () => {
        metrics = await (await fetch(url)).text();
        return currentLine.test(metrics);
      },
      30_000,
    ).catch((err: Error) => {
      throw new Error(
        `${err.message}: ${metrics
          .split('\n')
          .filter((l) => l.startsWith('dkim_relay_fleet_nodes'))
          .join('; ')}`,
      );
    });
    assert.match(metrics, new RegExp(`^dkim_relay_key_generation ${generation}$`, 'm'));
    assert.match(metrics, new RegExp(`^dkim_relay_fleet_nodes\\{state="current"\\} ${live.length}$`, 'm'));
    assert.match(metrics, /^dkim_relay_key_store_unreachable_seconds 0$/m);

    // The status page of a relay lists the same fleet: a row per relay, the silent one flagged.
    const pageUrl = url.replace(/\/metrics$/, '/');
    let page = '';
    const row = (address: string) =>
      new RegExp(`<tr data-relay="[^"]+" data-address="${address.replace(/\./g, '\\.')}" data-state="([a-z-]+)"[^>]*>(.*?)</tr>`).exec(page);
    await until(
      'the page lists every live relay current and the killed one silent',
      async () => {
        page = await (await fetch(pageUrl, { signal: AbortSignal.timeout(5000) })).text();
        return live.every((a) => row(a)?.[1] === 'current') && /data-state="silent" class="attention"/.test(page);
      },
      30_000,
    );
    assert.match(page, new RegExp(`<h2>Fleet</h2>\n<p id="fleet-store">Key generation ${generation}</p>`));
    for (const address of live) {
      const cells = row(address)![2]!;
      assert.match(
        cells,
        new RegExp(
          `^<td>[^<!]+</td><td>\\d+\\.\\d+\\.\\d+[^<]*</td><td><code>${address.replace(/\./g, '\\.')}</code></td><td class="n">${generation}</td><td>\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC</td>`,
        ),
      );
      assert.match(cells, /<span class="badge ok">current<\/span>/);
    }
    const silent = /<tr [^>]*data-state="silent" class="attention">(.*?)<\/tr>/.exec(page)![1]!;
    assert.match(silent, /^<td>! [^<]+<\/td>/);
    assert.match(silent, /<span class="badge bad">silent<\/span> <span class="muted">not heard from since /);
  });

  /**
   * How long after `write` began each relay loaded the change, by the relay's
   * own "loaded at" time: how quickly the test's probes get to look (a
   * throttled host has stretched them past a second) is not the relay's delay.
   */
  async function changeSeenAfter(write: (store: KeyStore) => unknown): Promise<number[]> {
    const before = Number((await cluster.psql('fleet', 'SELECT generation FROM store_generation')).trim());
    const store = await openKeyStore({ dir: join(tempDir(), 'keys'), database: url, encryptionKeyFile: kek }, { refreshMs: 0 });
    let started: number;
    try {
      started = Date.now();
      await write(store);
    } finally {
      await store.close();
    }
    const loaded = (note: string) => /generation (\d+) loaded at (\S+);/.exec(note);
    return Promise.all(
      nodes.map(async (n) => {
        let seen: RegExpExecArray | null = null;
        await until('the change', async () => Number((seen = loaded(await healthNote(n.relay)))?.[1]) > before);
        return Date.parse(seen![2]!) - started;
      }),
    );
  }

  async function publishedRecords(): Promise<Record<string, string>> {
    const store = await openKeyStore({ dir: join(nodes[0]!.dir, 'keys'), database: url, encryptionKeyFile: kek }, { refreshMs: 0 });
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
});
