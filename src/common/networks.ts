// Who may relay: clients from listed networks, or clients that authenticated.
// Everyone else is refused at MAIL FROM — never an open relay.
import ipaddr from 'ipaddr.js';
import { UserError } from './errors.ts';

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

export class NetworkList {
  private readonly ranges: Range[];

  /** `key` names the configuration key the list comes from, for the error message. */
  constructor(networks: string[], key = 'access.networks') {
    this.ranges = networks.map((text) => parseNetwork(text, key));
  }

  includes(address: string): boolean {
    let ip: ipaddr.IPv4 | ipaddr.IPv6;
    try {
      ip = ipaddr.process(address); // ::ffff:10.0.0.1 → 10.0.0.1
    } catch {
      return false;
    }
    return this.ranges.some(([net, bits]) => net.kind() === ip.kind() && ip.match(net, bits));
  }
}

export function parseNetwork(text: string, key: string): Range {
  try {
    if (text.includes('/')) return ipaddr.parseCIDR(text);
    const ip = ipaddr.parse(text);
    return [ip, ip.kind() === 'ipv4' ? 32 : 128];
  } catch {
    throw new UserError(`${key}: "${text}" is not an IP address or CIDR range`, 'write e.g. 192.0.2.10 or 10.1.0.0/16');
  }
}
