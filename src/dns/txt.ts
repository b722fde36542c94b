// TXT lookups through the system resolver or a named nameserver. A record's
// character-strings are joined with nothing between them (RFC 6376 §3.6.2.2).
import { Resolver } from 'node:dns/promises';

/** Every TXT record at `name`, strings joined; [] when the name or the type does not exist. */
export async function lookupTxt(name: string, nameserver?: string): Promise<string[]> {
  const resolver = new Resolver({ timeout: 3000, tries: 2 });
  if (nameserver) resolver.setServers([nameserver]);
  try {
    return (await resolver.resolveTxt(name)).map((strings) => strings.join(''));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTFOUND' || code === 'ENODATA') return [];
    throw err;
  }
}
