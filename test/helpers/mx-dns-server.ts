// A small DNS server on loopback UDP for mail routing tests: MX, A, AAAA and
// CNAME records from a table, answered the way a recursive resolver would
// (a CNAME is followed inside the answer, RFC 1034 §4.3.2). A name not in
// the table is NXDOMAIN; a name in it without the type asked is NODATA. A
// name listed in `failures` makes the server answer SERVFAIL, or stay silent
// so the client times out.
import { createSocket } from 'node:dgram';
import packet, { type Answer, type Question } from 'dns-packet';

export type MxRecord = { type: 'MX'; preference: number; exchange: string };
export type RoutingRecord = MxRecord | { type: 'A' | 'AAAA' | 'CNAME'; data: string };

export interface MxDnsServer {
  /** "127.0.0.1:PORT", for the upstream's `resolver` setting. */
  address: string;
  /** Records by owner name (lower case, no trailing dot). */
  records: Map<string, RoutingRecord[]>;
  failures: Map<string, 'servfail' | 'silent'>;
  /** Every question asked, "name TYPE". */
  queries: string[];
  close(): Promise<void>;
}

const MAX_CNAMES = 8;

export async function startMxDnsServer(records: Record<string, RoutingRecord[]> = {}): Promise<MxDnsServer> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const server: MxDnsServer = {
    address: `127.0.0.1:${socket.address().port}`,
    records: new Map(Object.entries(records).map(([name, list]) => [name.toLowerCase(), list])),
    failures: new Map(),
    queries: [],
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
  socket.on('message', (query, peer) => {
    const reply = answer(server, query);
    if (reply) socket.send(reply, peer.port, peer.address);
  });
  return server;
}

function answer(server: MxDnsServer, raw: Buffer): Buffer | null {
  let query;
  try {
    query = packet.decode(raw);
  } catch {
    return null;
  }
  const question = query.questions?.[0];
  if (!question) return null;
  const name = question.name.toLowerCase();
  server.queries.push(`${name} ${question.type}`);
  const failure = server.failures.get(name);
  if (failure === 'silent') return null;
  const flags = packet.AUTHORITATIVE_ANSWER | ((query.flags ?? 0) & packet.RECURSION_DESIRED);
  const reply = (rcode: number, answers: Answer[]): Buffer =>
    packet.encode({ type: 'response', id: query.id, flags: flags | rcode, questions: [question as Question], answers });
  if (failure === 'servfail') return reply(2, []);

  const answers: Answer[] = [];
  let current = name;
  for (let hops = 0; hops <= MAX_CNAMES; hops++) {
    const found = server.records.get(current);
    if (!found) return reply(answers.length ? 0 : 3, answers);
    const alias = found.find((r) => r.type === 'CNAME');
    if (alias && question.type !== 'CNAME') {
      const target = (alias as { data: string }).data.toLowerCase();
      answers.push({ type: 'CNAME', name: current, ttl: 300, data: target });
      current = target;
      continue;
    }
    for (const record of found.filter((r) => r.type === question.type)) {
      answers.push(
        record.type === 'MX'
          ? { type: 'MX', name: current, ttl: 300, data: { preference: record.preference, exchange: record.exchange } }
          : ({ type: record.type, name: current, ttl: 300, data: record.data } as Answer),
      );
    }
    return reply(0, answers);
  }
  return reply(2, []);
}
