// "IP[:PORT]" of a primary server: 192.0.2.53, 192.0.2.53:5353, 2001:db8::53, [2001:db8::53]:5353.
import { isIP } from 'node:net';

export interface ServerAddress {
  host: string;
  port: number;
}

/** The address, or undefined when `text` is not an IP address with an optional port. */
export function parseServerAddress(text: string, defaultPort = 53): ServerAddress | undefined {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  const [host, port] = bracketed ? [bracketed[1]!, bracketed[2]] : isIP(text) === 6 ? [text, undefined] : text.split(':', 3) as [string, string?];
  const number = port === undefined ? defaultPort : /^\d{1,5}$/.test(port) ? Number(port) : NaN;
  if (!isIP(host) || !(number >= 1 && number <= 65535)) return undefined;
  if (!bracketed && isIP(host) === 4 && text.split(':').length > 2) return undefined;
  return { host, port: number };
}
