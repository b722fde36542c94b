// "IP[:PORT]" as people write an address to listen on or to ask: 192.0.2.53,
// 192.0.2.53:5353, 2001:db8::53, [2001:db8::53]:5353. An IP address, never a
// name, so what it binds to or asks is plain from the text.
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

export interface HostPort {
  host: string;
  port: number;
}

/** What one use of the address accepts. */
export interface HostPortRules {
  /** The port when the text names none; without it the port is required. */
  defaultPort?: number;
  /** The lowest port accepted: 0 lets a listener take any free port. */
  minPort?: 0 | 1;
  /** Whether an IPv4 address may stand in brackets too ([192.0.2.53]:53). */
  bracketedIPv4?: boolean;
}

/** A listener's address: the port is required, and 0 asks the system for a free one. */
export const LISTEN_ADDRESS: HostPortRules = { minPort: 0 };

/** The address, or undefined when `text` is not an IP address with a port as `rules` ask. */
export function parseHostPort(text: string, rules: HostPortRules = {}): HostPort | undefined {
  const bracketed = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(text);
  const withPort = bracketed ? null : /^([^:]+):(\d{1,5})$/.exec(text);
  const [host, port] = bracketed ? [bracketed[1]!, bracketed[2]] : withPort ? [withPort[1]!, withPort[2]] : [text, undefined];
  const family = isIP(host);
  if (family === 0 || (bracketed && family === 4 && !rules.bracketedIPv4)) return undefined;
  const number = port === undefined ? rules.defaultPort : Number(port);
  if (number === undefined || number < (rules.minPort ?? 1) || number > 65535) return undefined;
  return { host, port: number };
}

/** 127.0.0.0/8 or ::1 (an IPv4-mapped loopback address too): only this machine can connect. */
export function isLoopback(host: string): boolean {
  return ipaddr.process(host).range() === 'loopback';
}
