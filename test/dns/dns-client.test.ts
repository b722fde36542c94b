// The resolver against a real authoritative server (Knot DNS on loopback):
// UDP, TCP after truncation, CNAMEs, negative answers, refusals, silence,
// and finding a zone's authoritative servers; then servers that misbehave,
// and addresses that cannot be reached: each a one-line failure naming the
// server, never an exception.
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { after, before, describe, test } from 'node:test';
import packet from 'dns-packet';
import { authoritativeServers } from '../../src/dns/authoritative.ts';
import { DnsClient } from '../../src/dns/dns-client.ts';
import { startBadDnsServer, type Misbehaviour } from '../helpers/bad-dns-server.ts';
import { startKnot, type Knot } from '../helpers/knot.ts';
import { skipWithout } from '../helpers/tools.ts';

const chunk = 'A'.repeat(250);
const ZONE = `$ORIGIN client.test.
$TTL 3600
@      SOA ns1 hostmaster 1 3600 600 86400 300
@      NS  ns1
@      NS  ns2
ns1    A   127.0.0.1
ns2    A   127.0.0.2
small  TXT "v=DKIM1; " "p=abc"
big    TXT "${chunk}" "${chunk}" "${chunk}"
alias  CNAME small
hop1   CNAME hop2
hop2   CNAME small
loop1  CNAME loop2
loop2  CNAME loop1
out    CNAME target.other.test.
`;
const OTHER = `$ORIGIN other.test.
$TTL 600
@      SOA ns1.client.test. hostmaster 1 3600 600 86400 300
@      NS  ns1.client.test.
target TXT "from the other zone"
`;

describe('DnsClient against knotd', { skip: skipWithout('knotd', 'knotc') }, () => {
  let knot: Knot;
  let silent: Socket;
  let silentPort: number;
  let silentHeard = 0;
  before(async () => {
    knot = await startKnot({ 'client.test': ZONE, 'other.test': OTHER });
    silent = createSocket('udp4'); // takes queries, never answers
    silent.on('message', () => silentHeard++);
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
    silentPort = silent.address().port;
  });
  after(async () => {
    silent?.close();
    await knot?.stop();
  });

  test('a small TXT answer over UDP, strings kept apart, with its TTL', async () => {
    const answer = await new DnsClient().query('small.client.test', 'TXT', knot);
    assert.ok(answer.ok);
    assert.equal(answer.transport, 'udp');
    assert.deepEqual(
      answer.records.map((r) => [r.strings, r.ttl]),
      [[['v=DKIM1; ', 'p=abc'], 3600]],
    );
  });

  test('over 512 octets: truncated over UDP without EDNS, so asked again over TCP', async () => {
    const answer = await new DnsClient().query('big.client.test', 'TXT', knot);
    assert.ok(answer.ok);
    assert.equal(answer.transport, 'tcp');
    assert.deepEqual(answer.records[0]!.strings, [chunk, chunk, chunk]);
    const edns = await new DnsClient({ udpPayloadSize: 1232 }).query('big.client.test', 'TXT', knot);
    assert.ok(edns.ok);
    assert.equal(edns.transport, 'udp');
  });

  test('CNAMEs are followed, within the zone and to another zone', async () => {
    const client = new DnsClient();
    for (const [name, chain] of [
      ['alias', ['alias.client.test', 'small.client.test']],
      ['hop1', ['hop1.client.test', 'hop2.client.test', 'small.client.test']],
    ] as const) {
      const answer = await client.query(`${name}.client.test`, 'TXT', knot);
      assert.ok(answer.ok);
      assert.deepEqual(answer.chain, chain);
      assert.deepEqual(answer.records[0]!.strings, ['v=DKIM1; ', 'p=abc']);
    }
    const out = await client.query('out.client.test', 'TXT', knot);
    assert.ok(out.ok);
    assert.deepEqual(out.chain, ['out.client.test', 'target.other.test']);
    assert.deepEqual(
      out.records.map((r) => [r.strings, r.ttl]),
      [[['from the other zone'], 600]],
    );
  });

  test('a CNAME loop, and too many CNAMEs, are one-line failures', async () => {
    const loop = await new DnsClient().query('loop1.client.test', 'TXT', knot);
    assert.ok(!loop.ok);
    assert.match(loop.reason, /CNAME loop/);
    const long = await new DnsClient({ maxCnames: 1 }).query('hop1.client.test', 'TXT', knot);
    assert.ok(!long.ok);
    assert.match(long.reason, /more than 1 CNAMEs/);
  });

  test('NXDOMAIN and NODATA are answers with no records', async () => {
    const nx = await new DnsClient().query('nothing.client.test', 'TXT', knot);
    assert.ok(nx.ok);
    assert.equal(nx.rcode, 'NXDOMAIN');
    assert.deepEqual(nx.records, []);
    const nodata = await new DnsClient().query('ns1.client.test', 'TXT', knot);
    assert.ok(nodata.ok);
    assert.equal(nodata.rcode, 'NOERROR');
    assert.deepEqual(nodata.records, []);
  });

  test('REFUSED for a zone the server does not serve', async () => {
    const answer = await new DnsClient().query('example.org', 'TXT', knot);
    assert.ok(!answer.ok);
    assert.equal(answer.reason, `REFUSED from ${knot.address} for example.org TXT`);
  });

  test('SERVFAIL is a one-line failure, not an answer', async () => {
    // knotd answers SERVFAIL only for a broken zone; a two-line responder stands in for a failing resolver.
    const failing = createSocket('udp4');
    failing.on('message', (query, peer) => {
      const asked = packet.decode(query);
      failing.send(packet.encode({ type: 'response', id: asked.id, flags: 2, questions: asked.questions }), peer.port, peer.address);
    });
    await new Promise<void>((resolve) => failing.bind(0, '127.0.0.1', resolve));
    try {
      const answer = await new DnsClient().query('small.client.test', 'TXT', { host: '127.0.0.1', port: failing.address().port });
      assert.deepEqual(answer, {
        ok: false,
        server: `127.0.0.1:${failing.address().port}`,
        reason: `SERVFAIL from 127.0.0.1:${failing.address().port} for small.client.test TXT`,
      });
    } finally {
      failing.close();
    }
  });

  test('a server that does not answer: timeout after N s, and not waited for twice', async () => {
    const client = new DnsClient({ timeoutMs: 300, tries: 2 });
    const server = { host: '127.0.0.1', port: silentPort };
    const first = await client.query('small.client.test', 'TXT', server);
    assert.ok(!first.ok);
    assert.equal(first.reason, `timeout after 0.3 s at 127.0.0.1:${silentPort}`);
    assert.equal(silentHeard, 2); // two tries over UDP
    const second = await client.query('other.client.test', 'TXT', server);
    assert.ok(!second.ok);
    assert.equal(second.reason, first.reason);
    assert.equal(silentHeard, 2, 'the silent server was asked again');
  });

  test('the authoritative servers of a zone, from its SOA and NS records', async () => {
    const found = await authoritativeServers('small.client.test', knot, new DnsClient(), knot.port);
    assert.deepEqual(found, {
      ok: true,
      zone: 'client.test',
      servers: [
        { host: '127.0.0.1', port: knot.port },
        { host: '127.0.0.2', port: knot.port },
      ],
    });
    const other = await authoritativeServers('other.test', knot, new DnsClient(), 53);
    assert.deepEqual(other, { ok: true, zone: 'other.test', servers: [{ host: '127.0.0.1', port: 53 }] });
    const none = await authoritativeServers('example.org', knot, new DnsClient());
    assert.ok(!none.ok);
    assert.match(none.reason, /REFUSED/);
  });
});

describe('DnsClient: every socket fault is a failure naming the server', () => {
  /** The failure `query` resolves to; it must resolve (not throw) and say where. */
  async function failure(client: DnsClient, host: string, port: number): Promise<string> {
    const answer = await client.query('small.client.test', 'TXT', { host, port });
    assert.ok(!answer.ok, `an answer from ${host}:${port}?`);
    assert.equal(answer.server, host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);
    assert.ok(answer.reason.includes(answer.server), answer.reason);
    return answer.reason;
  }

  async function withServer(how: Misbehaviour, use: (server: Awaited<ReturnType<typeof startBadDnsServer>>) => Promise<void>): Promise<void> {
    const server = await startBadDnsServer(how);
    try {
      await use(server);
    } finally {
      await server.close();
    }
  }

  test('sending refused by the system (a broadcast address, EACCES): at once, not after a timeout', async () => {
    const started = performance.now();
    const reason = await failure(new DnsClient({ timeoutMs: 5000 }), '255.255.255.255', 53);
    assert.equal(reason, 'cannot reach 255.255.255.255:53 over UDP: not permitted: a firewall, or a broadcast address (EACCES)');
    assert.ok(performance.now() - started < 4000, 'waited for the timeout');
  });

  test('nothing listens on the port: connection refused', async () => {
    const probe = createSocket('udp4');
    await new Promise<void>((resolve) => probe.bind(0, '127.0.0.1', resolve));
    const port = probe.address().port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    assert.equal(await failure(new DnsClient({ timeoutMs: 5000 }), '127.0.0.1', port), `cannot reach 127.0.0.1:${port} over UDP: connection refused`);
  });

  test('a server that answers garbage: dropped, and the timeout says so', async () => {
    await withServer('garbage', async (server) => {
      const reason = await failure(new DnsClient({ timeoutMs: 300, tries: 1 }), server.host, server.port);
      assert.equal(reason, `timeout after 0.3 s at ${server.address} (1 reply(s) that were no answer to the query ignored)`);
    });
  });

  test('a server that answers with another id: dropped (RFC 5452 §9.1), and the timeout says so', async () => {
    await withServer('wrong-id', async (server) => {
      const reason = await failure(new DnsClient({ timeoutMs: 300, tries: 2 }), server.host, server.port);
      assert.equal(reason, `timeout after 0.3 s at ${server.address} (1 reply(s) that were no answer to the query ignored)`);
      assert.equal(server.heard(), 2);
    });
  });

  test('a truncated answer whose TCP retry is refused', async () => {
    await withServer('truncated', async (server) => {
      assert.equal(
        await failure(new DnsClient({ timeoutMs: 2000 }), server.host, server.port),
        `answer truncated over UDP and TCP refused at ${server.address}`,
      );
    });
  });

  test('a truncated answer, then garbage over TCP', async () => {
    await withServer('truncated-garbage-tcp', async (server) => {
      assert.equal(await failure(new DnsClient({ timeoutMs: 2000 }), server.host, server.port), `unreadable answer over TCP from ${server.address}`);
    });
  });
});
