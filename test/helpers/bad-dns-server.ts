// DNS servers on loopback that misbehave as broken or hostile ones do:
// never answer, answer bytes that are no DNS message, answer with another
// query's id, or answer truncated (TC) with nothing listening on TCP, or
// truncated with garbage over TCP.
import { createSocket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import packet from 'dns-packet';

export type Misbehaviour = 'silent' | 'garbage' | 'wrong-id' | 'truncated' | 'truncated-garbage-tcp';

export interface BadDnsServer {
  host: string;
  port: number;
  /** "127.0.0.1:PORT", for --nameserver and dns.resolvers. */
  address: string;
  /** Queries received over UDP so far. */
  heard(): number;
  close(): Promise<void>;
}

const GARBAGE = Buffer.from('this is no DNS message');

export async function startBadDnsServer(how: Misbehaviour): Promise<BadDnsServer> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const port = socket.address().port;
  let heard = 0;
  socket.on('message', (query, peer) => {
    heard++;
    const reply = answer(how, query);
    if (reply) socket.send(reply, peer.port, peer.address);
  });
  // Garbage over TCP needs a TCP listener on the same port number; the other kinds leave TCP refused there.
  let tcp: Server | undefined;
  if (how === 'truncated-garbage-tcp') {
    tcp = createServer((conn) => {
      conn.on('error', () => {});
      conn.once('data', () => conn.end(Buffer.concat([Buffer.from([0, GARBAGE.length]), GARBAGE])));
    });
    await new Promise<void>((resolve, reject) => {
      tcp!.once('error', reject);
      tcp!.listen(port, '127.0.0.1', resolve);
    });
  }
  return {
    host: '127.0.0.1',
    port,
    address: `127.0.0.1:${port}`,
    heard: () => heard,
    close: async () => {
      await new Promise<void>((resolve) => socket.close(() => resolve()));
      if (tcp) await new Promise<void>((resolve) => tcp.close(() => resolve()));
    },
  };
}

function answer(how: Misbehaviour, query: Buffer): Buffer | undefined {
  if (how === 'silent') return undefined;
  if (how === 'garbage') return GARBAGE;
  const asked = packet.decode(query);
  const id = how === 'wrong-id' ? ((asked.id ?? 0) + 1) & 0xffff : asked.id;
  const flags = how === 'wrong-id' ? 0 : packet.TRUNCATED_RESPONSE;
  return packet.encode({ type: 'response', id, flags, questions: asked.questions, answers: [] });
}
