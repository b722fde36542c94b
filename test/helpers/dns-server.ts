// A small authoritative DNS server on loopback UDP for tests: answers TXT
// queries from a table (each record a list of character-strings), NXDOMAIN
// for anything else. Enough for node:dns, dkimpy and Mail::DKIM lookups.
// Its `mode` makes it misbehave as broken servers do: refuse every query,
// answer SERVFAIL, or never answer (the client times out).
import { createSocket } from 'node:dgram';

export type TxtTable = Map<string, string[][]>;

export type DnsMode = 'answer' | 'refuse' | 'servfail' | 'silent';

export interface DnsServer {
  /** "127.0.0.1:PORT", for Resolver.setServers / --nameserver. */
  address: string;
  port: number;
  records: TxtTable;
  /** How it treats the next queries; 'answer' unless changed. */
  mode: DnsMode;
  close(): Promise<void>;
}

export async function startDnsServer(records: TxtTable = new Map()): Promise<DnsServer> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const port = socket.address().port;
  const server: DnsServer = {
    address: `127.0.0.1:${port}`,
    port,
    records,
    mode: 'answer',
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
  socket.on('message', (query, peer) => {
    if (server.mode === 'silent') return;
    const answer = server.mode === 'answer' ? respond(query, records) : failure(query, server.mode === 'refuse' ? 5 : 2);
    if (answer) socket.send(answer, peer.port, peer.address);
  });
  return server;
}

/** The query sent back with QR set and an error rcode (2 SERVFAIL, 5 REFUSED), no answers. */
function failure(query: Buffer, rcode: number): Buffer | null {
  if (query.length < 12) return null;
  const reply = Buffer.from(query);
  reply.writeUInt16BE(0x8000 | (query.readUInt16BE(2) & 0x0100) | rcode, 2);
  reply.writeUInt16BE(0, 6);
  return reply;
}

function respond(query: Buffer, records: TxtTable): Buffer | null {
  if (query.length < 12) return null;
  let at = 12;
  const labels: string[] = [];
  while (at < query.length && query[at] !== 0) {
    const length = query[at]!;
    labels.push(query.subarray(at + 1, at + 1 + length).toString('latin1'));
    at += length + 1;
  }
  const questionEnd = at + 5;
  if (questionEnd > query.length) return null;
  const type = query.readUInt16BE(at + 1);
  const name = labels.join('.').toLowerCase();
  const found = records.get(name);
  const answers = type === 16 && found ? found : [];

  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 2); // id
  header.writeUInt16BE(0x8400 | (query.readUInt16BE(2) & 0x0100) | (found ? 0 : 3), 2); // QR AA (RD) rcode
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answers.length, 6);
  const parts = [header, query.subarray(12, questionEnd)];
  for (const strings of answers) {
    const rdata = Buffer.concat(strings.map((s) => Buffer.concat([Buffer.from([Buffer.byteLength(s, 'latin1')]), Buffer.from(s, 'latin1')])));
    const rr = Buffer.alloc(12);
    rr.writeUInt16BE(0xc00c, 0); // pointer to the question name
    rr.writeUInt16BE(16, 2);
    rr.writeUInt16BE(1, 4);
    rr.writeUInt32BE(300, 6);
    rr.writeUInt16BE(rdata.length, 10);
    parts.push(rr, rdata);
  }
  return Buffer.concat(parts);
}
