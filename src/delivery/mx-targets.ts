// Which addresses direct delivery may connect to: pure decisions on an
// address, the relay's own listeners and the networks an administrator
// allowed. A recipient domain is chosen by whoever sends the mail, so its
// MX, A and AAAA records (or an address literal) could otherwise aim the
// relay at services inside its own network, or at the relay itself.
import ipaddr from 'ipaddr.js';
import type { NetworkList } from '../common/networks.ts';

/** How this relay can be reached: a target among these is the relay itself. */
export interface RelaySelf {
  /** Where its SMTP listeners are bound; host 0.0.0.0 or :: means every address of this host. */
  listeners: readonly { host: string; port: number }[];
  /** The addresses of this host's network interfaces. */
  localAddresses: readonly string[];
}

export type TargetVerdict =
  | { ok: true }
  /** The address and port are one of the relay's own listeners (RFC 5321 §5.1: a relay does not send mail to itself). */
  | { ok: false; kind: 'loop'; reason: string }
  /** An address inside this host or its networks, not in delivery.upstream.allowNetworks. */
  | { ok: false; kind: 'inward'; reason: string };

/** ipaddr.js ranges that lead inward, in words. */
const INWARD: Record<string, string> = {
  unspecified: 'the unspecified address',
  broadcast: 'the broadcast address',
  multicast: 'a multicast address',
  linkLocal: 'a link-local address',
  loopback: 'a loopback address',
  private: 'a private address (RFC 1918)',
  uniqueLocal: 'a unique local address (fc00::/7)',
};

/** "::ffff:10.0.0.1" → 10.0.0.1; null for what is no address. */
function parsed(address: string): ipaddr.IPv4 | ipaddr.IPv6 | null {
  try {
    return ipaddr.process(address);
  } catch {
    return null;
  }
}

const same = (a: ipaddr.IPv4 | ipaddr.IPv6, b: ipaddr.IPv4 | ipaddr.IPv6): boolean => a.kind() === b.kind() && a.toString() === b.toString();

/** Whether `address` is one of this host's own: loopback, or an address of one of its interfaces. */
function isOwn(ip: ipaddr.IPv4 | ipaddr.IPv6, self: RelaySelf): boolean {
  if (ip.range() === 'loopback') return true;
  return self.localAddresses.some((own) => {
    const other = parsed(own);
    return other !== null && same(ip, other);
  });
}

/** Whether `address`:`port` reaches one of the relay's own listeners. */
export function isRelayItself(address: string, port: number, self: RelaySelf): boolean {
  const ip = parsed(address);
  if (!ip) return false;
  return self.listeners.some((listener) => {
    if (listener.port !== port) return false;
    const bound = parsed(listener.host);
    if (!bound) return false;
    // A listener on the unspecified address takes every address of this host (on Linux, :: takes IPv4 too).
    if (bound.range() === 'unspecified') return isOwn(ip, self);
    return same(ip, bound);
  });
}

/** Whether direct delivery may connect to `address`:`port`, and why not. */
export function targetVerdict(address: string, port: number, self: RelaySelf, allowed: NetworkList): TargetVerdict {
  const ip = parsed(address);
  if (!ip) return { ok: false, kind: 'inward', reason: `${address} is not an IP address` };
  if (isRelayItself(address, port, self)) return { ok: false, kind: 'loop', reason: `${ip.toString()} port ${port} is this relay's own listener` };
  if (allowed.includes(ip.toString())) return { ok: true };
  const range = INWARD[ip.range()];
  if (range) return { ok: false, kind: 'inward', reason: `${ip.toString()} is ${range}` };
  if (isOwn(ip, self)) return { ok: false, kind: 'inward', reason: `${ip.toString()} is an address of this host` };
  return { ok: true };
}
