// What the process holds: file descriptors (by kind, sockets by which port
// they belong to) and heap after a full GC. Linux only (/proc).
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { collectGarbage, gcFunction } from '../helpers/collect.ts';

interface TcpEntry {
  localPort: number;
  remotePort: number;
  /** /proc/net/tcp state: 01 ESTABLISHED, 06 TIME_WAIT, 08 CLOSE_WAIT, 0A LISTEN, … */
  state: string;
  inode: string;
}

export const TCP_STATES: Record<string, string> = {
  '01': 'ESTABLISHED',
  '02': 'SYN_SENT',
  '03': 'SYN_RECV',
  '04': 'FIN_WAIT1',
  '05': 'FIN_WAIT2',
  '06': 'TIME_WAIT',
  '07': 'CLOSE',
  '08': 'CLOSE_WAIT',
  '09': 'LAST_ACK',
  '0A': 'LISTEN',
  '0B': 'CLOSING',
};

function tcpTable(): TcpEntry[] {
  const out: TcpEntry[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10) continue;
      out.push({
        localPort: Number.parseInt(cols[1]!.split(':')[1]!, 16),
        remotePort: Number.parseInt(cols[2]!.split(':')[1]!, 16),
        state: cols[3]!,
        inode: cols[9]!,
      });
    }
  }
  return out;
}

export interface FdCensus {
  total: number;
  /** Server-side sockets of relay sessions (local port = relay port, not the listener). */
  relaySessions: number;
  /** Our own client sockets to the relay. */
  fuzzClients: number;
  /** Sockets between the relay's pooled upstream transport and the sink, both ends (both live in this process). */
  upstreamPool: number;
  otherSockets: number;
  other: number;
  /** State names of the relay-session sockets, for the report. */
  relaySessionStates: string[];
}

export function fdCensus(relayPort: number, sinkPort: number): FdCensus {
  const names = readdirSync('/proc/self/fd');
  const byInode = new Map(tcpTable().map((e) => [e.inode, e]));
  const census: FdCensus = { total: 0, relaySessions: 0, fuzzClients: 0, upstreamPool: 0, otherSockets: 0, other: 0, relaySessionStates: [] };
  for (const name of names) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${name}`);
    } catch {
      continue; // the fd readdir itself used, already closed
    }
    census.total++;
    const socket = /^socket:\[(\d+)\]$/.exec(target);
    if (!socket) {
      census.other++;
      continue;
    }
    const entry = byInode.get(socket[1]!);
    if (!entry) census.otherSockets++;
    else if (entry.localPort === relayPort && entry.state !== '0A') {
      census.relaySessions++;
      census.relaySessionStates.push(TCP_STATES[entry.state] ?? entry.state);
    } else if (entry.remotePort === relayPort) census.fuzzClients++;
    else if ((entry.localPort === sinkPort && entry.state !== '0A') || entry.remotePort === sinkPort) census.upstreamPool++;
    else census.otherSockets++;
  }
  return census;
}

/** Waits (bounded) until no relay-session or client socket is left; returns the last census. */
export async function settledCensus(relayPort: number, sinkPort: number, maxMs: number): Promise<FdCensus> {
  const deadline = Date.now() + maxMs;
  let census = fdCensus(relayPort, sinkPort);
  while ((census.relaySessions > 0 || census.fuzzClients > 0) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    census = fdCensus(relayPort, sinkPort);
  }
  // Handles closed in the same tick as the last socket are released in the event loop's close phase:
  // a few turns of the loop, not a pause, let them go.
  for (let turn = 0; turn < 3; turn++) await new Promise(setImmediate);
  return fdCensus(relayPort, sinkPort);
}

export { gcFunction as gc } from '../helpers/collect.ts';

/** heapUsed after two full collections, or null without gc. */
export function heapAfterGc(): number | null {
  if (!gcFunction()) return null;
  collectGarbage();
  return process.memoryUsage().heapUsed;
}

/** Notes every time the event loop was blocked for longer than `thresholdMs` (checked every 20 ms). */
export class StallWatch {
  readonly stalls: { start: number; end: number; ms: number }[] = [];
  #last = Date.now();
  #timer: NodeJS.Timeout;

  constructor(thresholdMs: number) {
    this.#timer = setInterval(() => {
      const now = Date.now();
      const ms = now - this.#last - 20;
      if (ms > thresholdMs && this.stalls.length < 100) this.stalls.push({ start: this.#last + 20, end: now, ms });
      this.#last = now;
    }, 20);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
