// A socket error met while reaching a DNS server, in words: the network
// errors a host without a route (or behind a firewall) gives keep their code,
// so an administrator can search for it.
const MEANING: Record<string, string> = {
  ENETUNREACH: 'no route to its network',
  EHOSTUNREACH: 'no route to the host',
  EADDRNOTAVAIL: 'no local address to reach it from',
  EAFNOSUPPORT: 'this host has no network of that address family',
  EACCES: 'not permitted: a firewall, or a broadcast address',
  EPERM: 'not permitted by a firewall',
  ETIMEDOUT: 'the connection timed out',
  ECONNRESET: 'the connection was reset',
};

export function socketProblem(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ECONNREFUSED') return 'connection refused';
  const meaning = code === undefined ? undefined : MEANING[code];
  return meaning ? `${meaning} (${code})` : (code ?? err.message);
}
