// "HOST:PORT" of the metrics listener: 127.0.0.1:9125, [::1]:9125, 0.0.0.0:9125.
// An IP address, not a name, so what it binds to is plain from the configuration.
import ipaddr from 'ipaddr.js';

export interface ListenAddress {
  host: string;
  port: number;
}

/** The address, or undefined when `text` is not IP:PORT (IPv6 in brackets) with a port of 0-65535. */
export function parseListenAddress(text: string): ListenAddress | undefined {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (!match) return undefined;
  const host = match[1] ?? match[2]!;
  const port = Number(match[3]);
  if (port > 65535) return undefined;
  if (match[1] !== undefined ? !ipaddr.IPv6.isValid(host) : !ipaddr.IPv4.isValidFourPartDecimal(host)) return undefined;
  return { host, port };
}

/** 127.0.0.0/8 or ::1 (an IPv4-mapped loopback address too): only this machine can connect. */
export function isLoopback(host: string): boolean {
  const parsed = ipaddr.process(host);
  return parsed.range() === 'loopback';
}
