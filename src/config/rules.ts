// What a value must be beyond its type: names, networks and password hashes
// that the relay could not use. The schema applies these rules; the files a
// configuration names are checked apart (file-check.ts).
import ipaddr from 'ipaddr.js';
import type { z } from 'zod';
import { isValidClientName, normalizeDomain } from '../common/names.ts';
import { parseNetwork } from '../common/networks.ts';
import { parseHash } from '../common/password-hash.ts';
import type { TlsFiles } from './tls-files.ts';

type Ctx = z.core.$RefinementCtx;

/** A configuration problem: `message` says what is wrong, `hint` how to mend it (printed after " — "). */
function problem(ctx: Ctx, message: string, hint: string, path: (string | number)[] = []): void {
  ctx.addIssue({ code: 'custom', message, params: { hint }, path });
}

export function domainName(value: string, ctx: Ctx): void {
  try {
    normalizeDomain(value);
  } catch {
    problem(ctx, `"${value}" is not a valid domain name`, 'write a domain such as example.com');
  }
}

/** A name this relay gives itself (greeting, EHLO, Received:): a fully-qualified host name (RFC 5321 §4.1.1.1, §2.3.5). */
export function hostName(value: string, ctx: Ctx): void {
  try {
    normalizeDomain(value);
  } catch {
    problem(ctx, `"${value}" is not a fully-qualified host name`, 'write the name this host is known by, such as relay.example.com');
  }
}

/** signing.domains is looked up by the d= domain, which is always lower-case ASCII. */
export function signingDomainKeys(domains: Record<string, unknown>, ctx: Ctx): void {
  for (const key of Object.keys(domains)) {
    let normal: string;
    try {
      normal = normalizeDomain(key);
    } catch {
      problem(ctx, `"${key}" is not a valid domain name`, 'key each entry by a domain such as example.com', [key]);
      continue;
    }
    if (normal !== key) problem(ctx, `"${key}" never matches a signing domain`, `write it as ${normal}`, [key]);
  }
}

export function network(value: string, ctx: Ctx): void {
  let ok: boolean;
  try {
    parseNetwork(value, '');
    // ipaddr.js also reads "10.1" or "3232235777" as IPv4 (inet_aton forms): a typo would admit another network.
    const address = value.split('/')[0]!;
    ok = address.includes(':') || ipaddr.IPv4.isValidFourPartDecimal(address);
  } catch {
    ok = false;
  }
  if (!ok) problem(ctx, `"${value}" is not an IP address or CIDR range`, 'write e.g. 192.0.2.10, 10.1.0.0/16 or 2001:db8::/32');
}

export function passwordHash(value: string, ctx: Ctx): void {
  if (parseHash(value)) return;
  problem(
    ctx,
    'not a complete hash made by `dkim-relay passwd`, so no password can match it',
    "paste the output of: printf '%s' 'the password' | dkim-relay passwd NAME",
  );
}

export function tlsPort(listen: { port: number; tlsPort?: number; tls?: TlsFiles }, ctx: Ctx): void {
  if (listen.tlsPort !== undefined && !listen.tls) {
    problem(ctx, 'needs listen.tls (key and cert)', 'add listen.tls.key and listen.tls.cert, or remove listen.tlsPort', ['tlsPort']);
  }
  if (listen.tlsPort !== undefined && listen.tlsPort !== 0 && listen.tlsPort === listen.port) {
    problem(ctx, `is listen.port too: one port cannot take both plain SMTP and implicit TLS`, 'give listen.tlsPort a port of its own (465 is usual)', [
      'tlsPort',
    ]);
  }
}

/** A smart-host password goes in clear unless the connection is encrypted first. */
export function upstreamAuthNeedsTls(
  upstream: { type: string; auth?: unknown; secure?: boolean; requireTLS?: boolean; allowInsecureAuth?: boolean },
  ctx: Ctx,
): void {
  if (upstream.type !== 'smtp' || !upstream.auth || upstream.secure || upstream.requireTLS || upstream.allowInsecureAuth) return;
  problem(
    ctx,
    'the smart-host password would go out without TLS',
    'set requireTLS: true (STARTTLS) or secure: true (port 465), or allowInsecureAuth: true on this upstream',
    ['auth'],
  );
}

export function clientName(value: string, ctx: Ctx): void {
  if (isValidClientName(value)) return;
  problem(ctx, `"${value}" is not a usable client name`, 'use up to 32 lower-case letters, digits and inner hyphens, e.g. scanner (it starts DNS selectors)');
}

/** A client's own keys are found by its name (`keys generate --client NAME`); whenNoKey says what its own chain does when empty. */
export function ownKeysNeedName(client: { name?: string; keys: string; whenNoKey?: string }, ctx: Ctx): void {
  if (client.keys === 'own' && client.name === undefined) {
    problem(ctx, 'keys: own needs a name for this client', 'add name: (e.g. name: scanner); its keys are made with `dkim-relay keys generate --client NAME`', [
      'name',
    ]);
  }
  if (client.keys !== 'own' && client.whenNoKey !== undefined) {
    problem(ctx, 'whenNoKey applies to a client with keys: own only', 'add keys: own, or remove whenNoKey', ['whenNoKey']);
  }
}

/**
 * Names pick a chain of keys: two clients of one name would share it. An AUTH
 * user in two entries with keys of their own would have two chains to sign with.
 */
export function uniqueClientNames(clients: readonly { name?: string; user?: string; keys: string }[], ctx: Ctx): void {
  const names = new Map<string, number>();
  const ownUsers = new Map<string, number>();
  for (const [i, c] of clients.entries()) {
    if (c.name !== undefined) {
      const first = names.get(c.name);
      if (first !== undefined) problem(ctx, `the name ${c.name} is taken by clients.${first}`, 'give each client a name of its own', [i, 'name']);
      else names.set(c.name, i);
    }
    if (c.keys === 'own' && c.user !== undefined) {
      const first = ownUsers.get(c.user);
      if (first !== undefined)
        problem(ctx, `user ${c.user} already has keys of its own in clients.${first}`, 'keep one entry with keys: own per user', [i, 'user']);
      else ownUsers.set(c.user, i);
    }
  }
}
