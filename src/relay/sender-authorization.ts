// Which From: domains a client may send as (config `clients`). A client that
// matches no entry is unrestricted; one that matches is held to the union
// of its entries' domains (subdomains included).
import type { Config } from '../config/schema.ts';
import { UserError } from '../errors.ts';
import { inDomains, normalizeDomain } from '../keys/names.ts';
import { NetworkList } from './admission.ts';

export interface Client {
  address: string;
  user?: string;
}

export class SenderAuthorization {
  private readonly rules: { user?: string; networks?: NetworkList; domains: string[] }[];

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
    }));
  }

  /** The domains the client is held to, or null when no entry matches it (any domain). */
  allowedDomains(client: Client): string[] | null {
    const matching = this.rules.filter((r) => (r.user !== undefined && r.user === client.user) || r.networks?.includes(client.address));
    return matching.length === 0 ? null : [...new Set(matching.flatMap((r) => r.domains))];
  }

  /** null when allowed, else why not. */
  refusal(client: Client, fromDomain: string): string | null {
    const allowed = this.allowedDomains(client);
    if (allowed === null || inDomains(fromDomain, allowed)) return null;
    const who = client.user ? `user ${client.user}` : `client ${client.address}`;
    return `${who} may not send as ${fromDomain} (allowed: ${allowed.join(', ')})`;
  }
}
