// access.networks relay without a login. A range that holds a large part of
// the Internet makes the relay sign and send for anyone who reaches it: an
// open relay for the domains it signs. Allowed (a relay behind a firewall
// that does the admitting), but said by `config check` and at start.
import { parseNetwork } from '../common/networks.ts';

/** Shorter prefixes than these are wider than any one organisation's network (10.0.0.0/8; fc00::/7, all unique local addresses). */
const NARROWEST_WIDE = { ipv4: 8, ipv6: 7 };

export function wideNetworkAdvice(networks: string[]): string[] {
  return networks.flatMap((text) => {
    const [ip, bits] = parseNetwork(text, 'access.networks');
    const kind = ip.kind();
    if (bits >= NARROWEST_WIDE[kind]) return [];
    const family = kind === 'ipv4' ? 'IPv4' : 'IPv6';
    const share = bits === 0 ? `every ${family} address` : `1/${2 ** bits} of all ${family} addresses`;
    return [
      `access.networks holds ${text}, ${share}: whoever reaches the listener relays without a login, and gets mail signed for your domains (an open relay); list your own networks, and let other clients log in (access.users)`,
    ];
  });
}
