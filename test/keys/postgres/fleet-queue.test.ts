// A key is not revoked while any relay of the fleet still holds mail it
// signed. Two `serve` processes on one private PostgreSQL store: relay A runs
// the rotation (short retireAfter), relay B never does and delivers to an
// upstream that answers 451, so the message it signed with the old key stays
// in its spool. B's heartbeat says so; A holds the revocation and says why
// (its log, `status`), pass after pass. Once B's upstream accepts, B delivers
// (dkimpy verifies the signature with the old key, still published), its
// heartbeat no longer names the key, and A's next pass revokes it. Then B
// dies: silent, its spool is unknown, and A holds the next revocation until
// B is forgotten.
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openKeyStore } from '../../../src/keys/open-store.ts';
import type { PgKeyStore } from '../../../src/keys/pg-store.ts';
import { verifyWithDkimpy } from '../../helpers/independent-verify.ts';
import { send, startSink, type Sink, type SinkBehaviour } from '../../helpers/relay-harness.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { until } from '../../helpers/until.ts';
import { dkimRelay, serve, type Served } from '../../cli/support.ts';
import { postgresOrSkip, startPgCluster, type PgCluster } from './pg-cluster.ts';
import { kekFile } from './support.ts';

/** The query type of a DNS query (RFC 1035 §4.1.2): after the 12-byte header and the question's name. */
function queryType(packet: Buffer): number {
  let at = 12;
  while (at < packet.length && packet[at] !== 0) at += packet[at]! + 1;
  return packet.readUInt16BE(at + 1);
}

/**
 * A resolver that never answers: each zone lookup (NS, SOA) it receives is
 * the rotation's DNS observation at the start of a pass of the relay that
 * uses it, so the test can wait for passes rather than for time.
 */
async function passCounter(): Promise<{ port: number; socket: Socket; passes: () => number }> {
  const socket = createSocket('udp4');
  let zoneQueries = 0;
  socket.on('message', (packet) => {
    if ([2, 6].includes(queryType(packet))) zoneQueries++;
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { port: socket.address().port, socket, passes: () => zoneQueries };
}

describe('a fleet: the rotation leader does not revoke a key while another relay holds mail it signed', postgresOrSkip(), () => {
  let cluster: PgCluster;
  let url: string;
  let kek: string;
  let sinkA: Sink;
  let sinkB: Sink;
  /** B's upstream: answers 451 to every DATA until the test removes `data`. */
  const upstreamB: SinkBehaviour = { data: { code: 451, text: '4.3.2 try again later' } };
  let dnsA: Awaited<ReturnType<typeof passCounter>>;
  let dnsB: Awaited<ReturnType<typeof passCounter>>;
  let dirA: string;
  let a: Served;
  let b: Served;

  const config = (dir: string, rotation: string, sinkPort: number, dnsPort: number) => {
    const file = join(dir, 'relay.yaml');
    writeFileSync(
      file,
      `keys: {dir: ${join(dir, 'keys')}, database: "${url}", encryptionKeyFile: ${kek}}\nmetrics: {listen: "127.0.0.1:0"}\nlisten: {host: 127.0.0.1, port: 0}\n` +
        `rotation: ${rotation}\ndns: {timeoutSeconds: 1, resolvers: ["127.0.0.1:${dnsPort}"]}\n` +
        `delivery: {mode: queue, upstream: {type: smtp, host: 127.0.0.1, port: ${sinkPort}}}\n` +
        `queue: {dir: ${join(dir, 'queue')}, retryAfter: 2s, maxRetryInterval: 2s}\n`,
    );
    return file;
  };
  const psql = (sql: string) => cluster.psql('queue', sql);
  const keyId = async (selector: string) => (await psql(`SELECT id FROM keys WHERE selector = '${selector}'`)).trim();
  const revoked = async (selector: string) => (await psql(`SELECT "at" FROM events WHERE selector = '${selector}' AND to_state = 'revoked'`)).trim();
  /** Activates a new key `selector` (the active one retires), as `keys activate` does; the public record of `retiring`. */
  const activate = async (selector: string, retiring: string) => {
    const store = await openKeyStore({ dir: join(tempDir(), 'keys'), database: url, encryptionKeyFile: kek }, { refreshMs: 0 });
    try {
      await store.generate({ domain: 'example.com', selector, algorithm: 'rsa', bits: 1024 });
      await store.activate('example.com', selector);
      return { [`${retiring}._domainkey.example.com`]: store.publishedValue(`${retiring}._domainkey.example.com`)! };
    } finally {
      await store.close();
    }
  };
  /** A's log line saying why it holds a revocation, with `text` in it. */
  const heldLine = (text: string) =>
    a
      .output()
      .split('\n')
      .find((l) => l.includes('"rotation":"held"') && l.includes(text));
  /** The next step `status --json` (on A's configuration) gives a key. */
  const statusNext = async (selector: string) => {
    const status = await dkimRelay(['--config', join(dirA, 'relay.yaml'), 'status', '--json'], dirA);
    const report = JSON.parse(status.stdout) as { domains: { keys: { selector: string; state: string; next: { text: string } | null }[] }[] };
    const key = report.domains[0]!.keys.find((k) => k.selector === selector)!;
    assert.equal(key.state, 'retiring');
    return key.next!.text;
  };
  const sendThroughB = async (subject: string) => {
    const reply = await send({
      port: b.port(),
      from: 'alice@example.com',
      to: ['bob@example.net'],
      raw: `From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: ${subject}\r\n\r\nSigned with the key about to retire.\r\n`,
    });
    assert.ok(reply.ok, reply.response);
  };

  before(async () => {
    cluster = await startPgCluster();
    url = await cluster.createDatabase('queue');
    kek = kekFile(tempDir());
    sinkA = await startSink();
    sinkB = await startSink(upstreamB);
    dnsA = await passCounter();
    dnsB = await passCounter();
    dirA = tempDir();
    const dirB = tempDir();
    const configA = config(dirA, `{check: "*/2 * * * * *", retireAfter: 3s, removeAfter: 1h}`, sinkA.port, dnsA.port);
    const configB = config(dirB, `{check: "off", retireAfter: 3s, removeAfter: 1h}`, sinkB.port, dnsB.port);
    const made = await dkimRelay(
      ['--config', configA, 'keys', 'generate', '--domain', 'example.com', '--selector', 's1', '--bits', '1024', '--activate'],
      dirA,
    );
    assert.equal(made.code, 0, made.stderr);
    [a, b] = await Promise.all([serve(['--config', configA], dirA), serve(['--config', configB], dirB)]);
  });
  after(async () => {
    a?.kill();
    b?.kill();
    await sinkA?.close();
    await sinkB?.close();
    dnsA?.socket.close();
    dnsB?.socket.close();
    await cluster?.stop();
  });

  test('B holds mail signed with s1: A holds the revocation and says why; B delivers it; A revokes s1', async (t) => {
    const s1 = await keyId('s1');
    const addressB = `127.0.0.1:${b.port()}`;
    const queuedOnB = async () => (await psql(`SELECT oldest_queued ->> '${s1}' FROM fleet_nodes WHERE address = '${addressB}'`)).trim();

    // Mail through B, signed with s1 (the only key), accepted into B's spool; its upstream defers it.
    await sendThroughB('held on relay B');
    await until('B deferred it at least once', () => b.output().includes('4.3.2 try again later'), { timeoutMs: 20_000 });
    await until("B's heartbeat names s1", async () => (await queuedOnB()) !== '', { timeoutMs: 20_000, everyMs: 200 });

    // s2 is activated: s1 retires, and is due for revocation 3 s later.
    const records = await activate('s2', 's1');

    // A's passes past retireAfter: it holds the revocation, and its log says why, naming B.
    await until('A holds the revocation for the mail on B', () => heldLine(`on relay `) !== undefined, { timeoutMs: 30_000, everyMs: 100 });
    assert.ok(heldLine(`(${addressB})) is delivered`), 'the line names B');
    t.diagnostic(`A's log: ${JSON.parse(heldLine('on relay ')!).msg}`);
    const passes = dnsA.passes();
    await until('two more passes of A', () => dnsA.passes() >= passes + 2, { timeoutMs: 20_000, everyMs: 100 });
    assert.equal(await revoked('s1'), '', 's1 is not revoked while B holds mail it signed');
    assert.equal(sinkB.received.length, 0);

    // `status` (on A's configuration) says the same.
    assert.match(
      await statusNext('s1'),
      new RegExp(`^revoked once the queued mail it signed \\(oldest .* UTC on relay \\S+ \\(${addressB.replaceAll('.', '\\.')}\\)\\) is delivered$`),
    );

    // B's upstream accepts: B delivers at its next retry, signed with s1 as dkimpy sees it.
    delete upstreamB.data;
    await until('B delivered the message', () => sinkB.received.length === 1, { timeoutMs: 20_000, everyMs: 50 });
    const deliveredAt = Date.now();
    assert.deepEqual(await verifyWithDkimpy(sinkB.received[0]!.raw, records), [true], 'dkimpy: the s1 signature verifies');

    // B's heartbeat no longer names s1; A's next pass revokes it.
    await until("B's heartbeat no longer names s1", async () => (await queuedOnB()) === '', { timeoutMs: 20_000, everyMs: 200 });
    await until('s1 revoked', async () => (await revoked('s1')) !== '', { timeoutMs: 30_000, everyMs: 200 });
    const revokedAt = Date.parse(await revoked('s1'));
    assert.ok(revokedAt > deliveredAt - 1000, `revoked at ${new Date(revokedAt).toISOString()}, delivered about ${new Date(deliveredAt).toISOString()}`);
    t.diagnostic(`s1 revoked ${revokedAt - deliveredAt} ms after B's delivery was seen`);
  });

  test('B silent: its spool is unknown, so A holds the revocation of s2 and says why, until B is forgotten', async () => {
    const addressB = `127.0.0.1:${b.port()}`;
    // B's last heartbeat says its queue holds nothing; but a relay may take mail between two heartbeats
    // (or while the database is away from it) and die before telling: only its silence is known.
    assert.equal((await psql(`SELECT oldest_queued FROM fleet_nodes WHERE address = '${addressB}'`)).trim(), '{}');
    b.child.kill('SIGKILL');
    await b.exited;
    // Until it is silent, its last heartbeat stands; then s2 retires.
    const stateOfB = async () => {
      const status = await dkimRelay(['--config', join(dirA, 'relay.yaml'), 'status', '--json'], dirA);
      return (JSON.parse(status.stdout) as { fleet: { nodes: { address: string; state: string }[] } }).fleet.nodes.find((n) => n.address === addressB)?.state;
    };
    await until('B silent', async () => (await stateOfB()) === 'silent', { timeoutMs: 40_000, everyMs: 1000 });
    await activate('s3', 's2');

    // B is not heard from: s2 stays published past retireAfter.
    await until('A holds the revocation for silent B', () => heldLine(`(${addressB}) has not been heard from since`) !== undefined, {
      timeoutMs: 40_000,
      everyMs: 100,
    });
    assert.match(
      await statusNext('s2'),
      new RegExp(
        `^revocation held: relay \\S+ \\(${addressB.replaceAll('.', '\\.')}\\) has not been heard from since .* UTC; its queue may hold mail signed with this key`,
      ),
    );
    const passes = dnsA.passes();
    await until('two more passes of A', () => dnsA.passes() >= passes + 2, { timeoutMs: 20_000, everyMs: 100 });
    assert.equal(await revoked('s2'), '', 's2 is not revoked while B is silent');

    // Forgotten (its spool dealt with by a person): the next pass revokes s2.
    const name = (await psql(`SELECT name FROM fleet_nodes WHERE address = '${addressB}'`)).trim();
    const forgot = await dkimRelay(['--config', join(dirA, 'relay.yaml'), 'keys', 'fleet', 'forget', name, '--address', addressB], dirA);
    assert.equal(forgot.code, 0, forgot.stderr);
    await until('s2 revoked', async () => (await revoked('s2')) !== '', { timeoutMs: 30_000, everyMs: 200 });
  });
});

describe("a relay's heartbeat: what its queue holds, by key id", postgresOrSkip(), () => {
  let cluster: PgCluster;
  before(async () => {
    cluster = await startPgCluster();
  });
  after(async () => {
    await cluster?.stop();
  });

  test('each signing key of the store by its id; a signer the store does not hold is left out; an unreadable queue is NULL, never empty', async () => {
    const url = await cluster.createDatabase('heartbeat');
    const store = (await openKeyStore({ dir: join(tempDir(), 'keys'), database: url, encryptionKeyFile: kekFile(tempDir()) }, { refreshMs: 0 })) as PgKeyStore;
    try {
      const key = await store.generate({ domain: 'example.com', selector: 's1', algorithm: 'ed25519', activate: true });
      let queue: () => { domain: string; selector: string; oldest: number }[] = () => [
        { domain: 'example.com', selector: 's1', oldest: Date.UTC(2026, 11, 1) },
        { domain: 'example.org', selector: 'elsewhere', oldest: Date.UTC(2026, 10, 1) },
      ];
      store.announce({ name: 'relay1', version: 'test', address: '192.0.2.1:25', queued: () => queue() });
      const column = () => cluster.psql('heartbeat', `SELECT coalesce(oldest_queued::text, 'NULL') FROM fleet_nodes WHERE name = 'relay1'`);
      await until('the heartbeat', async () => (await column()).trim() !== '', { everyMs: 50 });
      assert.deepEqual(JSON.parse(await column()), { [key.id]: '2026-12-01T00:00:00.000Z' });
      assert.deepEqual(store.fleet()[0]!.oldestQueued, { [key.id]: '2026-12-01T00:00:00.000Z' });

      queue = () => {
        throw new Error('the queue index cannot be read');
      };
      await store.refresh();
      assert.equal((await column()).trim(), 'NULL');
      assert.equal(store.fleet()[0]!.oldestQueued, null);
      assert.deepEqual(store.peers(), [], 'this relay is not its own peer');
    } finally {
      await store.close();
    }
  });
});
