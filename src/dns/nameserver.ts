// Which DNS servers to ask: `IP[:PORT]` as people write it, and the
// system resolver's servers (/etc/resolv.conf) when none is named.
import { getServers } from 'node:dns';
import { isIP } from 'node:net';
import { UserError } from '../common/errors.ts';

export interface Nameserver {
  host: string;
  port: number;
}

/** 192.0.2.1, 192.0.2.1:5353, 2001:db8::1, [2001:db8::1]:5353. */
export function parseNameserver(text: string): Nameserver {
  const input = text.trim();
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(input);
  const v4 = /^([0-9.]+)(?::(\d+))?$/.exec(input);
  const [host, port] = bracketed ? [bracketed[1]!, bracketed[2]] : v4 ? [v4[1]!, v4[2]] : [input, undefined];
  const portNumber = port === undefined ? 53 : Number(port);
  if (!isIP(host) || !Number.isInteger(portNumber) || portNumber < 1 || portNumber > 65535) {
    throw new UserError(`"${text}" is not a name server address`, 'give an IP address with an optional port, e.g. 192.0.2.53, 192.0.2.53:5353 or [2001:db8::53]:53');
  }
  return { host, port: portNumber };
}

export function isNameserver(text: string): boolean {
  try {
    parseNameserver(text);
    return true;
  } catch {
    return false;
  }
}

export function formatNameserver(server: Nameserver): string {
  return isIP(server.host) === 6 ? `[${server.host}]:${server.port}` : `${server.host}:${server.port}`;
}

/** The servers node's own resolver uses (from /etc/resolv.conf). */
export function systemNameservers(): Nameserver[] {
  return getServers().map(parseNameserver);
}
