// What a value must be beyond its type: names, networks, password hashes and
// TLS files that the relay could not use. The schema applies these rules, so
// `serve`, a SIGHUP reload and `config check` refuse the same files.
import ipaddr from 'ipaddr.js';
import type { z } from 'zod';
import { normalizeDomain } from '../common/names.ts';
import { parseNetwork } from '../common/networks.ts';
import { parseHash } from '../common/password-hash.ts';
import { loadTls, TlsFileProblem, type TlsFiles } from './tls-files.ts';

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
  problem(ctx, 'not a complete hash made by `dkim-relay passwd`, so no password can match it', "paste the output of: printf '%s' 'the password' | dkim-relay passwd NAME");
}

/** Whether parsing reads listen.tls's files: off for commands that never listen (see withoutListenerFiles). */
let readingListenerFiles = true;

/**
 * Parses with the listener's TLS files left unread: `keys`, `dns`, `queue`,
 * `sign` and the like never listen, and a broken certificate must not stop
 * an administrator from looking at keys or the queue. `serve`, SIGHUP
 * reload and `config check` read them. Parsing is synchronous, so the
 * switch covers exactly this one parse.
 */
export function withoutListenerFiles<T>(parse: () => T): T {
  readingListenerFiles = false;
  try {
    return parse();
  } finally {
    readingListenerFiles = true;
  }
}

export function tlsFiles(files: TlsFiles, ctx: Ctx): void {
  if (!readingListenerFiles) return;
  try {
    loadTls(files);
  } catch (err) {
    if (!(err instanceof TlsFileProblem)) throw err;
    problem(ctx, err.message, err.hint ?? '', [err.field]);
  }
}

export function tlsPortNeedsTls(listen: { tlsPort?: number; tls?: TlsFiles }, ctx: Ctx): void {
  if (listen.tlsPort !== undefined && !listen.tls) {
    problem(ctx, 'needs listen.tls (key and cert)', 'add listen.tls.key and listen.tls.cert, or remove listen.tlsPort', ['tlsPort']);
  }
}

/** A smart-host password goes in clear unless the connection is encrypted first. */
export function upstreamAuthNeedsTls(upstream: { type: string; auth?: unknown; secure?: boolean; requireTLS?: boolean; allowInsecureAuth?: boolean }, ctx: Ctx): void {
  if (upstream.type !== 'smtp' || !upstream.auth || upstream.secure || upstream.requireTLS || upstream.allowInsecureAuth) return;
  problem(ctx, 'the smart-host password would go out without TLS', 'set requireTLS: true (STARTTLS) or secure: true (port 465), or allowInsecureAuth: true on this upstream', ['auth']);
}
