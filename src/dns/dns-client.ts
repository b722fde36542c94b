// Asks one DNS server directly, the way a verifier's resolver would: over UDP
// first (without EDNS by default, so an answer over 512 octets comes back
// truncated, RFC 1035 §4.2.1), then over TCP when the TC bit is set
// (RFC 7766). CNAMEs are followed a bounded number of times. Every failure
// is a one-line reason, never an exception: DNS trouble is a temperror for
// the caller (RFC 6376 §6.1.2), not a crash.
import { createSocket } from 'node:dgram';
import { isIP } from 'node:net';
import packet, { type Answer, type DecodedPacket, type RecordType } from 'dns-packet';
import { formatNameserver, type Nameserver } from './nameserver.ts';
import { socketProblem } from './socket-problem.ts';
import { exchangeTcp, TcpExchangeError } from './tcp-exchange.ts';

export type Transport = 'udp' | 'tcp';

export interface DnsRecord {
  type: RecordType;
  name: string;
  ttl: number;
  /** TXT: the character-strings as served; others: the text form (address, target name). */
  strings: string[];
}

export type DnsAnswer =
  | {
      ok: true;
      server: string;
      /** The name asked for, then each CNAME target followed (RFC 1034 §3.6.2). */
      chain: string[];
      /** Records of the type asked for at the end of the chain; [] for NXDOMAIN or NODATA. */
      records: DnsRecord[];
      rcode: 'NOERROR' | 'NXDOMAIN';
      /** How the final answer came: udp, or tcp after a truncated udp answer. */
      transport: Transport;
      authorities: DnsRecord[];
      additionals: DnsRecord[];
    }
  | { ok: false; server: string; reason: string };

export interface DnsClientOptions {
  timeoutMs?: number;
  /** UDP tries before giving up on a server. */
  tries?: number;
  /** EDNS(0) UDP payload size to announce; undefined sends no OPT record (answers over 512 octets are truncated). */
  udpPayloadSize?: number;
  maxCnames?: number;
}

class DnsFailure extends Error {}

export class DnsClient {
  private readonly timeoutMs: number;
  private readonly tries: number;
  private readonly udpPayloadSize: number | undefined;
  private readonly maxCnames: number;
  /** A server that timed out once is not waited for again in the same run. */
  private readonly silent = new Map<string, string>();
  private nextId = Math.floor(Math.random() * 0xffff);

  constructor(options: DnsClientOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? 3000;
    this.tries = options.tries ?? 2;
    this.udpPayloadSize = options.udpPayloadSize;
    this.maxCnames = options.maxCnames ?? 8;
  }

  async query(name: string, type: RecordType, server: Nameserver): Promise<DnsAnswer> {
    const where = formatNameserver(server);
    const chain = [lower(name)];
    try {
      for (;;) {
        const current = chain.at(-1)!;
        const { response, transport } = await this.exchange(current, type, server);
        const rcode = (response as DecodedPacket & { rcode: string }).rcode;
        if (rcode !== 'NOERROR' && rcode !== 'NXDOMAIN') throw new DnsFailure(`${rcode} from ${where} for ${current} ${type}`);
        const answers = (response.answers ?? []).map(toRecord).filter((r): r is DnsRecord => r !== null);
        // Follow the CNAME chain inside this answer, then ask again for a target it leaves open.
        let target = current;
        for (;;) {
          const cname = type === 'CNAME' ? undefined : answers.find((r) => r.type === 'CNAME' && lower(r.name) === target);
          if (!cname) break;
          target = lower(cname.strings[0]!);
          if (chain.includes(target)) throw new DnsFailure(`CNAME loop at ${target} (from ${where})`);
          chain.push(target); // bounded: the chain grows every time and is capped below
          if (chain.length > this.maxCnames + 1) throw new DnsFailure(`more than ${this.maxCnames} CNAMEs from ${name} (from ${where})`);
        }
        const records = answers.filter((r) => r.type === type && lower(r.name) === target);
        if (records.length === 0 && target !== current && rcode === 'NOERROR') continue; // the target lives elsewhere: ask for it
        return {
          ok: true,
          server: where,
          chain,
          records,
          rcode: records.length > 0 ? 'NOERROR' : (rcode as 'NOERROR' | 'NXDOMAIN'),
          transport,
          authorities: (response.authorities ?? []).map(toRecord).filter((r): r is DnsRecord => r !== null),
          additionals: (response.additionals ?? []).map(toRecord).filter((r): r is DnsRecord => r !== null),
        };
      }
    } catch (err) {
      if (err instanceof DnsFailure) return { ok: false, server: where, reason: err.message };
      return { ok: false, server: where, reason: `${(err as Error).message} (from ${where})` };
    }
  }

  private async exchange(name: string, type: RecordType, server: Nameserver): Promise<{ response: DecodedPacket; transport: Transport }> {
    const where = formatNameserver(server);
    const known = this.silent.get(where);
    if (known) throw new DnsFailure(known);
    const id = (this.nextId = (this.nextId + 1) & 0xffff);
    const query = packet.encode({
      type: 'query',
      id,
      flags: packet.RECURSION_DESIRED,
      questions: [{ type, name, class: 'IN' }],
      additionals: this.udpPayloadSize === undefined ? [] : [{ type: 'OPT', name: '.', udpPayloadSize: this.udpPayloadSize } as Answer],
    });
    const udp = await this.udp(query, id, server);
    if (!udp.flag_tc) return { response: udp, transport: 'udp' };
    return { response: await this.tcp(query, id, server), transport: 'tcp' };
  }

  private async udp(query: Buffer, id: number, server: Nameserver): Promise<DecodedPacket> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.udpOnce(query, id, server);
      } catch (err) {
        if (!(err instanceof TimeoutError) || attempt >= this.tries) {
          if (err instanceof TimeoutError) this.silent.set(formatNameserver(server), err.message);
          throw err;
        }
      }
    }
  }

  private udpOnce(query: Buffer, id: number, server: Nameserver): Promise<DecodedPacket> {
    const where = formatNameserver(server);
    return new Promise<DecodedPacket>((resolve, reject) => {
      const socket = createSocket(isIP(server.host) === 6 ? 'udp6' : 'udp4');
      /** Datagrams that were no answer to this query (unreadable, another id): dropped, as RFC 5452 §9.1 asks. */
      let ignored = 0;
      let settled = false;
      const timer = setTimeout(() => {
        const heard = ignored > 0 ? ` (${ignored} reply(s) that were no answer to the query ignored)` : '';
        finish(new TimeoutError(`timeout after ${this.timeoutMs / 1000} s at ${where}${heard}`));
      }, this.timeoutMs);
      const finish = (result: Error | DecodedPacket) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (result instanceof Error) reject(result);
        else resolve(result);
        try {
          socket.close();
        } catch {
          // Already closed by a failed connect: nothing is left open, and the query is settled above either way.
        }
      };
      const failed = (err: Error | null) => {
        if (err) finish(socketFailure(err, where, 'UDP'));
      };
      socket.on('error', failed);
      socket.on('message', (message) => {
        try {
          const response = packet.decode(message);
          if (response.id === id && response.flag_qr) return finish(response);
        } catch {
          // unreadable: counted below
        }
        ignored++;
      });
      try {
        // dgram reports a failed connect (no route, no address) only to this callback; send() on that socket would throw.
        socket.connect(server.port, server.host, (err?: Error) => (err ? failed(err) : socket.send(query, failed)));
      } catch (err) {
        failed(err as Error);
      }
    });
  }

  private async tcp(query: Buffer, id: number, server: Nameserver): Promise<DecodedPacket> {
    const where = formatNameserver(server);
    let answer: Buffer;
    try {
      answer = await exchangeTcp(server, query, this.timeoutMs);
    } catch (err) {
      if (!(err instanceof TcpExchangeError)) throw err;
      if (err.kind === 'timeout') throw new DnsFailure(`timeout over TCP after ${this.timeoutMs / 1000} s at ${where}`);
      if (err.kind === 'closed') throw new DnsFailure(`${where} closed the TCP connection before answering`);
      if (err.socketError?.code === 'ECONNREFUSED') throw new DnsFailure(`answer truncated over UDP and TCP refused at ${where}`);
      throw socketFailure(err.socketError!, where, 'TCP');
    }
    let response: DecodedPacket;
    try {
      response = packet.decode(answer);
    } catch {
      throw new DnsFailure(`unreadable answer over TCP from ${where}`);
    }
    if (response.id !== id) throw new DnsFailure(`answer over TCP from ${where} does not match the query`);
    return response;
  }
}

class TimeoutError extends DnsFailure {}

function socketFailure(err: Error, where: string, transport: 'UDP' | 'TCP'): DnsFailure {
  return new DnsFailure(`cannot reach ${where} over ${transport}: ${socketProblem(err)}`);
}

function lower(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

function toRecord(answer: Answer): DnsRecord | null {
  if (answer.type === 'OPT') return null;
  const ttl = answer.ttl ?? 0;
  const base = { type: answer.type, name: lower(answer.name), ttl };
  switch (answer.type) {
    case 'TXT': {
      const data = Array.isArray(answer.data) ? answer.data : [answer.data];
      // latin1 keeps each octet as one character, so lengths stay octet counts.
      return { ...base, strings: data.map((d) => (typeof d === 'string' ? d : d.toString('latin1'))) };
    }
    case 'A':
    case 'AAAA':
    case 'CNAME':
    case 'NS':
      return { ...base, strings: [lower(answer.data)] };
    case 'SOA':
      return { ...base, strings: [lower(answer.data.mname)] };
    default:
      return null;
  }
}
