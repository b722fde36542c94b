// A key is not revoked while any relay of the fleet still holds mail it
// signed. Two `serve` processes on one private PostgreSQL store: relay A runs
// the rotation (short retireAfter), relay B never does and delivers to an
// upstream that answers 451, so the message it signed with the old key stays
// in its spool. B's heartbeat says so; A holds the revocation and says why
// (its log, `status`), pass after pass. Once B's upstream accepts, B delivers
// (dkimpy verifies the signature with the old key, still published), its
// heartbeat no longer names the key, and A's next pass revokes it.
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openKeyStore } from '../../../src/keys/open-store.ts';
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
    const s1 = (await psql(`SELECT id FROM keys WHERE selector = 's1'`)).trim();
    const addressB = `127.0.0.1:${b.port()}`;
    const queuedOnB = async () => (await psql(`SELECT oldest_queued ->> '${s1}' FROM fleet_nodes WHERE address = '${addressB}'`)).trim();
    const revoked = async () => (await psql(`SELECT "at" FROM events WHERE selector = 's1' AND to_state = 'revoked'`)).trim();

    // Mail through B, signed with s1 (the only key), accepted into B's spool; its upstream defers it.
    const reply = await send({
      port: b.port(),
      from: 'alice@example.com',
      to: ['bob@example.net'],
      raw: 'From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: held on relay B\r\n\r\nSigned with the key about to retire.\r\n',
    });
    assert.ok(reply.ok, reply.response);
    await until('B deferred it at least once', () => b.output().includes('4.3.2 try again later'), { timeoutMs: 20_000 });
    await until("B's heartbeat names s1", async () => (await queuedOnB()) !== '', { timeoutMs: 20_000, everyMs: 200 });

    // s2 is activated: s1 retires, and is due for revocation 3 s later.
    const store = await openKeyStore({ dir: join(tempDir(), 'keys'), database: url, encryptionKeyFile: kek }, { refreshMs: 0 });
    let records: Record<string, string>;
    try {
      await store.generate({ domain: 'example.com', selector: 's2', algorithm: 'rsa', bits: 1024 });
      await store.activate('example.com', 's2');
      records = { 's1._domainkey.example.com': store.publishedValue('s1._domainkey.example.com')! };
    } finally {
      await store.close();
    }

    // A's passes past retireAfter: it holds the revocation, and its log says why, naming B.
    const heldLine = () =>
      a
        .output()
        .split('\n')
        .find((l) => l.includes('"rotation":"held"') && l.includes(`on relay `) && l.includes(`(${addressB})`));
    await until('A holds the revocation for the mail on B', () => heldLine() !== undefined, { timeoutMs: 30_000, everyMs: 100 });
    t.diagnostic(`A's log: ${JSON.parse(heldLine()!).msg}`);
    const passes = dnsA.passes();
    await until('two more passes of A', () => dnsA.passes() >= passes + 2, { timeoutMs: 20_000, everyMs: 100 });
    assert.equal(await revoked(), '', 's1 is not revoked while B holds mail it signed');
    assert.equal(sinkB.received.length, 0);

    // `status` (on A's configuration) says the same.
    const status = await dkimRelay(['--config', join(dirA, 'relay.yaml'), 'status', '--json'], dirA);
    const report = JSON.parse(status.stdout) as { domains: { keys: { selector: string; state: string; next: { text: string } | null }[] }[] };
    const old = report.domains[0]!.keys.find((k) => k.selector === 's1')!;
    assert.equal(old.state, 'retiring');
    assert.match(
      old.next!.text,
      new RegExp(`^revoked once the queued mail it signed \\(oldest .* UTC on relay \\S+ \\(${addressB.replaceAll('.', '\\.')}\\)\\) is delivered$`),
    );

    // B's upstream accepts: B delivers at its next retry, signed with s1 as dkimpy sees it.
    delete upstreamB.data;
    await until('B delivered the message', () => sinkB.received.length === 1, { timeoutMs: 20_000, everyMs: 50 });
    const deliveredAt = Date.now();
    assert.deepEqual(await verifyWithDkimpy(sinkB.received[0]!.raw, records), [true], 'dkimpy: the s1 signature verifies');

    // B's heartbeat no longer names s1; A's next pass revokes it.
    await until("B's heartbeat no longer names s1", async () => (await queuedOnB()) === '', { timeoutMs: 20_000, everyMs: 200 });
    await until('s1 revoked', async () => (await revoked()) !== '', { timeoutMs: 30_000, everyMs: 200 });
    const revokedAt = Date.parse(await revoked());
    assert.ok(revokedAt > deliveredAt - 1000, `revoked at ${new Date(revokedAt).toISOString()}, delivered about ${new Date(deliveredAt).toISOString()}`);
    t.diagnostic(`s1 revoked ${revokedAt - deliveredAt} ms after B's delivery was seen`);
  });
});
