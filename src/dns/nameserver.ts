// Which DNS servers to ask: `IP[:PORT]` as people write it, and the
// system resolver's servers (/etc/resolv.conf) when none is named.
import { getServers } from 'node:dns';
import { isIP } from 'node:net';
import { UserError } from '../common/errors.ts';
import { parseHostPort, type HostPort, type HostPortRules } from '../common/host-port.ts';

/** A name server to ask; the address as any listener or server has it. */
export type Nameserver = HostPort;

/** A DNS server (to ask, or to send updates to) answers on port 53 unless told otherwise; [192.0.2.53] is accepted too. */
export const DNS_SERVER_ADDRESS: HostPortRules = { defaultPort: 53, bracketedIPv4: true };

/** 192.0.2.1, 192.0.2.1:5353, 2001:db8::1, [2001:db8::1]:5353. */
export function parseNameserver(text: string): Nameserver {
  const address = parseHostPort(text.trim(), DNS_SERVER_ADDRESS);
  if (!address) {
    throw new UserError(
      `"${text}" is not a name server address`,
      'give an IP address with an optional port, e.g. 192.0.2.53, 192.0.2.53:5353 or [2001:db8::53]:53',
    );
  }
  return address;
}

export function isNameserver(text: string): boolean {
  return parseHostPort(text.trim(), DNS_SERVER_ADDRESS) !== undefined;
}

export function formatNameserver(server: Nameserver): string {
  return isIP(server.host) === 6 ? `[${server.host}]:${server.port}` : `${server.host}:${server.port}`;
}

/** The servers node's own resolver uses (from /etc/resolv.conf). */
export function systemNameservers(): Nameserver[] {
  return getServers().map(parseNameserver);
}

/** The servers to ask: dns.resolvers when it names any, else the system resolver's. */
export function configuredNameservers(resolvers: readonly string[]): Nameserver[] {
  return resolvers.length > 0 ? resolvers.map(parseNameserver) : systemNameservers();
}
