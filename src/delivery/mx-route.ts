// Which hosts take mail for a domain, in which order (RFC 5321 §5.1): pure
// decisions on what DNS answered; the lookups are in mx-lookup.ts.
import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';

export interface MxRecord {
  exchange: string;
  priority: number;
}

export type Exchanges =
  /** RFC 7505: the domain says it takes no mail at all. */
  | { kind: 'null' }
  /** Host names to try, most preferred first; `skipped` says which records were left out and why. */
  | { kind: 'hosts'; hosts: string[]; skipped: string[] }
  /** MX records exist but none names a host we may use. */
  | { kind: 'unusable'; skipped: string[] }
  /** The most preferred usable MX is this relay itself. */
  | { kind: 'loop'; host: string };

/** "MX.Example.NET." → "mx.example.net"; "." (the root) → "". */
export function hostName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/**
 * Orders the MX records of a domain. `ownNames` are the names this relay
 * answers to; `random` shuffles equal preferences (RFC 5321 §5.1 asks that
 * load be spread among them).
 */
export function orderExchanges(records: MxRecord[], ownNames: string[], random: () => number = Math.random): Exchanges {
  // RFC 7505 §3: a single MX with preference 0 and the root as exchange.
  if (records.length === 1 && records[0]!.priority === 0 && hostName(records[0]!.exchange) === '') return { kind: 'null' };
  const skipped: string[] = [];
  const usable = records.filter((record) => {
    const name = hostName(record.exchange);
    if (name === '') skipped.push(`MX ${record.priority} "." (a null MX among other MX records, RFC 7505 §3)`);
    // RFC 5321 §5.1: the MX data MUST be a domain name, never an address.
    else if (isIP(name) || isIP(name.replace(/^\[(ipv6:)?|\]$/g, '')))
      skipped.push(`MX ${record.priority} ${name} (an address, where RFC 5321 §5.1 wants a host name)`);
    else return true;
    return false;
  });
  if (usable.length === 0) return { kind: 'unusable', skipped };

  const own = new Set(ownNames.map(hostName));
  const keyed = usable.map((record) => ({ name: hostName(record.exchange), priority: record.priority, tiebreak: random() }));
  keyed.sort((a, b) => a.priority - b.priority || a.tiebreak - b.tiebreak);
  // RFC 5321 §5.1: a relay listed among the MX hosts discards itself and every
  // less preferred host, which would only send the mail back to it.
  const self = keyed.find((record) => own.has(record.name));
  if (self) {
    const better = keyed.filter((record) => record.priority < self.priority);
    if (better.length === 0) return { kind: 'loop', host: self.name };
    return { kind: 'hosts', hosts: unique(better.map((r) => r.name)), skipped };
  }
  return { kind: 'hosts', hosts: unique(keyed.map((r) => r.name)), skipped };
}

function unique(names: string[]): string[] {
  return [...new Set(names)];
}

export type Destination =
  | { kind: 'domain'; domain: string; ascii: string }
  /** RFC 5321 §4.1.3: user@[192.0.2.1] goes to that address, without DNS. */
  | { kind: 'literal'; domain: string; address: string }
  | { kind: 'invalid'; domain: string };

/** Where a recipient's mail goes, from its domain part. */
export function destination(recipient: string): Destination {
  const at = recipient.lastIndexOf('@');
  const domain = at < 0 ? '' : recipient.slice(at + 1).toLowerCase();
  const literal = /^\[(?:ipv6:)?([^\]]+)\]$/.exec(domain);
  if (literal) {
    const address = literal[1]!;
    const v6 = domain.startsWith('[ipv6:');
    return isIP(address) === (v6 ? 6 : 4) ? { kind: 'literal', domain, address } : { kind: 'invalid', domain };
  }
  // An internationalized domain is looked up by its A-labels (RFC 5890).
  const ascii = domain === '' ? '' : domainToASCII(domain.replace(/\.$/, ''));
  return ascii && !isIP(ascii) && ascii.includes('.') ? { kind: 'domain', domain, ascii } : { kind: 'invalid', domain };
}

/** Recipients by destination domain, in the order they first appear. */
export function groupByDomain(recipients: string[]): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const recipient of recipients) {
    const { domain } = destination(recipient);
    groups.set(domain, [...(groups.get(domain) ?? []), recipient]);
  }
  return groups;
}
