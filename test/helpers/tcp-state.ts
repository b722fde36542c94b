// The kernel's view of this host's TCP connections (/proc/net/tcp, tcp6): how
// a test knows that one side has closed a connection, rather than guessing
// how long that takes.
import { readFileSync } from 'node:fs';

/** The TCP states of a connection its side still holds open (RFC 793): ESTABLISHED, CLOSE_WAIT. */
const HELD = new Set(['01', '08']);

/**
 * How many connections are still held open on the side whose far end is
 * port `to` (a client of a server on that port), or whose own end is port
 * `on` (a server's side of its sessions).
 */
export function heldConnections(port: { to: number } | { on: number }): number {
  let held = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue; // no IPv6 table on this host
    }
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st …: addresses are HEX_IP:HEX_PORT.
      const [, local, remote, state] = line.trim().split(/\s+/);
      if (!local || !remote || !state || !HELD.has(state)) continue;
      const portOf = (address: string) => Number.parseInt(address.split(':')[1]!, 16);
      if ('to' in port ? portOf(remote) === port.to : portOf(local) === port.on) held++;
    }
  }
  return held;
}
