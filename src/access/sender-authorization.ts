// Which domains a client may send as (config `clients`), in From:, Sender:
// and MAIL FROM. A client that matches no entry is unrestricted; one that
// matches is held to the union of its entries' domains (subdomains included).
// It also says which key chain signs a client's mail: the first matching
// entry with keys of its own names it; otherwise the domain's keys sign.
import { domainToASCII } from 'node:url';
import type { Config } from '../config/schema.ts';
import { UserError } from '../common/errors.ts';
import { inDomains, normalizeDomain } from '../common/names.ts';
import { NetworkList } from '../common/networks.ts';

export interface Client {
  address: string;
  user?: string;
}

/** A client signing with a chain of its own (clients[].keys: own), and what it does when that chain has no active key. */
export interface ClientChain {
  client: string;
  whenNoKey: 'domain' | 'unknownDomain';
}

export class SenderAuthorization {
  private readonly rules: { user?: string; networks?: NetworkList; domains: string[]; chain?: ClientChain }[];

  constructor(clients: Config['clients']) {
    this.rules = clients.map((c, i) => ({
      user: c.user,
      networks: c.networks ? new NetworkList(c.networks, `clients.${i}.networks`) : undefined,
      domains: c.domains.map((d) => {
        try {
          return normalizeDomain(d);
        } catch (err) {
          throw new UserError(`clients.${i}.domains: ${(err as UserError).message}`, 'give domains such as example.com');
        }
      }),
      chain: ownChain(c),
    }));
  }

  /** null when allowed to use `domain` in From: (or in `field`), else why not. */
  refusal(client: Client, domain: string, field?: string): string | null {
    const allowed = this.allowedDomains(client);
    if (!allowed || inDomains(domain, allowed)) return null;
    return `${who(client)} may not send as ${domain}${field ? ` in ${field}` : ''} (allowed: ${allowed.join(', ')})`;
  }

  /**
   * The envelope sender (MAIL FROM): a restricted client may use only the
   * null sender <> or an address in its domains, so bounces of its mail
   * cannot be aimed at anyone else. null when allowed, else why not.
   */
  envelopeRefusal(client: Client, address: string): string | null {
    const allowed = this.allowedDomains(client);
    if (!allowed || address === '') return null;
    const at = address.lastIndexOf('@');
    const domain = at > 0 ? domainToASCII(address.slice(at + 1).toLowerCase()).replace(/\.$/, '') : '';
    if (domain !== '' && inDomains(domain, allowed)) return null;
    return `${who(client)} may not use the envelope sender <${address}> (allowed: <> or an address at ${allowed.join(', ')})`;
  }

  /** The domains the client is held to, or null when no entry matches it (any domain). */
  allowedDomains(client: Client): string[] | null {
    const matching = this.matching(client);
    return matching.length === 0 ? null : [...new Set(matching.flatMap((r) => r.domains))];
  }

  /** The chain of keys that signs this client's mail: the first matching entry's with keys of its own; null: the domain's. */
  chainFor(client: Client): ClientChain | null {
    return this.matching(client).find((r) => r.chain)?.chain ?? null;
  }

  private matching(client: Client) {
    return this.rules.filter((r) => (r.user !== undefined && r.user === client.user) || r.networks?.includes(client.address));
  }
}

/** The chain an entry signs with when it has keys of its own. */
function ownChain(entry: Config['clients'][number]): ClientChain | undefined {
  return entry.keys === 'own' && entry.name !== undefined ? { client: entry.name, whenNoKey: entry.whenNoKey ?? 'unknownDomain' } : undefined;
}

/** The chain of the clients[] entry named `name` with keys of its own (name already normalized); null when none is. */
export function chainNamed(clients: Config['clients'], name: string): ClientChain | null {
  for (const entry of clients) {
    const chain = ownChain(entry);
    if (chain?.client === name) return chain;
  }
  return null;
}

const who = (client: Client) => (client.user ? `user ${client.user}` : `client ${client.address}`);
