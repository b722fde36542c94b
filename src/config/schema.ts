// The configuration schema: every key, its type and its default.
// config/dkim-relay.example.yaml documents the same keys for people.
import { validate as validCron } from 'node-cron';
import { z } from 'zod';
import { isNameserver } from '../dns/nameserver.ts';
import { parseServerAddress } from '../dns/publish/server-address.ts';
import { isValidDomain } from '../common/names.ts';
import { isPostgresUrl } from '../keys/pg-url.ts';
import { isLoopback, parseListenAddress } from '../common/listen-address.ts';
import { durationSeconds } from './duration.ts';
import * as rules from './rules.ts';

const canonicalization = z
  .string()
  .regex(/^(relaxed|simple)(\/(relaxed|simple))?$/, 'must be relaxed/relaxed, simple/simple, relaxed/simple or simple/relaxed');

/** What readers see and intermediaries should not change. Never trace headers, which every hop may add (RFC 6376 §5.4). */
export const DEFAULT_SIGNED_HEADERS = [
  'From', 'Reply-To', 'Subject', 'Date', 'To', 'Cc', 'Message-ID', 'In-Reply-To', 'References',
  'MIME-Version', 'Content-Type', 'Content-Transfer-Encoding', 'List-Id', 'List-Unsubscribe',
  'List-Unsubscribe-Post',
];
export const DEFAULT_OVERSIGNED_HEADERS = ['From', 'Subject', 'Reply-To', 'To', 'Cc', 'Date', 'Message-ID'];

const headerName = z.string().regex(/^[!-9;-~]+$/, 'must be a header field name such as "Subject"');

/** Signing settings that a domain may override. */
const signingPolicy = z.strictObject({
  canonicalization: canonicalization.optional(),
  headers: z.array(headerName).nonempty().optional(),
  oversign: z.array(headerName).optional(),
});

const DURATION = /^[1-9]\d*[smhdw]$/;

const duration = z.string().regex(DURATION, 'must be a duration above zero such as "90s", "30m", "12h", "7d" or "2w"');

/**
 * Comparisons of two durations for the rules between fields. zod runs those
 * rules even when a field failed its own format check, which names its key
 * itself: a value that is unset or no duration makes the comparison false.
 */
function compared(a: string | undefined, b: string | undefined, holds: (a: number, b: number) => boolean): boolean {
  return a !== undefined && b !== undefined && DURATION.test(a) && DURATION.test(b) && holds(durationSeconds(a), durationSeconds(b));
}

const atMost = (a: string | undefined, b: string | undefined) => compared(a, b, (x, y) => x <= y);
const below = (a: string | undefined, b: string | undefined) => compared(a, b, (x, y) => x < y);

/** Waiting times of key rotation that a domain may override. */
const rotationTimes = z.strictObject({
  /** A new key's record must be served, matching, by every DNS server asked, this long before it signs. */
  publishFor: duration.optional(),
  /** A retired key's record stays this long (and while mail it signed is queued) before it is revoked. */
  retireAfter: duration.optional(),
  /** A revoked key is removed (record withdrawn, file deleted) this long after its revocation. */
  removeAfter: duration.optional(),
  /** A new key DNS has not served for this long, or a record that disappeared, is notified. */
  stuckAfter: duration.optional(),
});

/**
 * A message may wait in the queue up to queue.maxAge before it leaves; a
 * signature that expires (x=, RFC 6376 §3.5) before then would arrive dead.
 */
function signaturesOutlastQueue(config: { signing: { expireAfter?: string | undefined }; queue: { maxAge: string } }, ctx: z.core.$RefinementCtx): void {
  const expireAfter = config.signing.expireAfter;
  if (atMost(expireAfter, config.queue.maxAge)) {
    ctx.addIssue({ code: 'custom', path: ['signing', 'expireAfter'], message: `must be longer than queue.maxAge (${config.queue.maxAge}), or mail delivered late from the queue would carry an expired signature` });
  }
}

/**
 * A signature with x= stays valid until it expires, so the record of its key
 * must stay published as long: retireAfter must exceed signing.expireAfter.
 */
function retirementOutlastsSignatures(
  config: { signing: { expireAfter?: string | undefined }; rotation: { retireAfter: string; domains: Record<string, { retireAfter?: string | undefined }> } },
  ctx: z.core.$RefinementCtx,
): void {
  const expireAfter = config.signing.expireAfter;
  if (expireAfter === undefined) return;
  const check = (retireAfter: string, path: (string | number)[]) => {
    if (atMost(retireAfter, expireAfter)) {
      ctx.addIssue({ code: 'custom', path, message: `must be longer than signing.expireAfter (${expireAfter}), or mail still valid would fail DKIM` });
    }
  };
  check(config.rotation.retireAfter, ['rotation', 'retireAfter']);
  for (const [domain, times] of Object.entries(config.rotation.domains)) {
    if (times.retireAfter !== undefined) check(times.retireAfter, ['rotation', 'domains', domain, 'retireAfter']);
  }
}

/** keys.database needs its key-encryption key, holds no password, and the secrets files mean nothing without it. */
function sharedStoreSettings(keys: { database?: string | undefined; passwordFile?: string | undefined; encryptionKeyFile?: string | undefined }, ctx: z.core.$RefinementCtx): void {
  if (keys.database === undefined) {
    for (const field of ['passwordFile', 'encryptionKeyFile'] as const) {
      if (keys[field] !== undefined) ctx.addIssue({ code: 'custom', path: [field], message: 'applies only with keys.database (a PostgreSQL key store)' });
    }
    return;
  }
  if (!isPostgresUrl(keys.database)) return;
  if (keys.encryptionKeyFile === undefined) {
    ctx.addIssue({ code: 'custom', path: ['encryptionKeyFile'], message: 'is required with keys.database: make one with (umask 077; openssl rand -base64 32 > /etc/dkim-relay/kek)' });
  }
  if (new URL(keys.database).password !== '') {
    ctx.addIssue({ code: 'custom', path: ['database'], message: 'must not hold a password: put it in a file of mode 0600 named by keys.passwordFile' });
  }
}

/** Until one relay of a fleet is chosen to rotate (with fencing), rotation runs only on a single relay's own store. */
function rotationOffWithSharedStore(config: { keys: { database?: string | undefined }; rotation: { check: string } }, ctx: z.core.$RefinementCtx): void {
  if (config.keys.database !== undefined && config.rotation.check !== 'off') {
    ctx.addIssue({ code: 'custom', path: ['rotation', 'check'], message: 'must be "off" with keys.database in this release: rotate with `dkim-relay keys rotate` and `keys activate`' });
  }
}

const smtpUpstream = z.strictObject({
  type: z.literal('smtp'),
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535).default(25),
  /** Implicit TLS (usually port 465). */
  secure: z.boolean().default(false),
  /** Refuse to send unless the upstream offers STARTTLS. */
  requireTLS: z.boolean().default(false),
  /** Check the upstream's certificate. */
  rejectUnauthorized: z.boolean().default(true),
  auth: z.strictObject({ user: z.string().min(1), pass: z.string() }).optional(),
  /** Allow `auth` without secure or requireTLS: the password then goes in clear. */
  allowInsecureAuth: z.boolean().default(false),
  maxConnections: z.number().int().min(1).max(100).default(5),
  /** Some smart hosts refuse mail with more than one DKIM-Signature. */
  dualSign: z.boolean().default(true),
  /** Whether the upstream takes 8-bit data (8BITMIME): `auto` learns it from its EHLO; true/false override. */
  eightBitMime: z.union([z.literal('auto'), z.boolean()]).default('auto'),
  /** Name we give in EHLO. */
  name: z.string().optional(),
  timeoutSeconds: z.number().int().min(1).max(3600).default(60),
});

const fileUpstream = z.strictObject({
  type: z.literal('file'),
  /** Folder that receives one .eml file per message. */
  dir: z.string().min(1).default('outbox'),
  dualSign: z.boolean().default(true),
  eightBitMime: z.boolean().default(true),
});

/** Direct delivery to each recipient domain's MX hosts, for sites without a smart host. */
const mxUpstream = z.strictObject({
  type: z.literal('mx'),
  /** Port of the receiving hosts; 25 everywhere but in tests. */
  port: z.number().int().min(1).max(65535).default(25),
  /** Nameservers asked for MX and address records, IP[:PORT] each; unset: the system's. */
  resolver: z.array(z.string().refine(isNameserver, 'must be an IP address with an optional port, e.g. 192.0.2.53 or [2001:db8::53]:53')).nonempty().optional(),
  /** Name we give in EHLO, and by which a loop back to this relay is recognised; unset: the machine's host name. */
  heloName: z.string().superRefine(rules.domainName).optional(),
  /** Inward addresses (loopback, link-local, private, this host's) that MX answers and address literals may still lead to. */
  allowNetworks: z.array(z.string().superRefine(rules.network)).default([]),
  timeoutSeconds: z.number().int().min(1).max(3600).default(60),
  /** Deliver only over STARTTLS (the certificate is still not required to verify). */
  requireTLS: z.boolean().default(false),
  /** Connections open at once, in all and to one recipient domain. */
  maxConnections: z.number().int().min(1).max(1000).default(20),
  maxConnectionsPerDomain: z.number().int().min(1).max(100).default(3),
  dualSign: z.boolean().default(true),
  /** Always false: the next hop is unknown when signing, so 8-bit content is made 7-bit first (RFC 6376 §5.3). */
  eightBitMime: z.literal(false, { error: 'must be false: with direct MX delivery the next hop is unknown when signing, so content is always made 7-bit' }).default(false),
});

const user = z.strictObject({
  name: z.string().min(1),
  /** An scrypt hash made by `dkim-relay passwd`; never a clear-text password. */
  password: z.string().superRefine(rules.passwordHash),
});

/** RFC 5322 §3.6: fields that may occur at most once; a second copy is a known DKIM replay trick. */
export const DEFAULT_SINGLE_INSTANCE_HEADERS = [
  'From', 'Sender', 'Reply-To', 'To', 'Cc', 'Bcc', 'Subject', 'Date', 'Message-ID', 'In-Reply-To', 'References',
];

/** Who may send as which From: domains; a client matches by user or network. */
const client = z
  .strictObject({
    user: z.string().min(1).optional(),
    networks: z.array(z.string().superRefine(rules.network)).optional(),
    /** From: domains this client may use (subdomains included). */
    domains: z.array(z.string().superRefine(rules.domainName)).nonempty(),
  })
  .refine((c) => c.user !== undefined || c.networks !== undefined, 'name a user or networks');

/** A DNS zone or domain: lower case, without the final dot. */
const dnsName = z
  .string()
  .transform((s) => s.trim().replace(/\.$/, '').toLowerCase())
  .refine(isValidDomain, 'must be a domain name such as example.com');

/** A TSIG key's name as the server knows it: one or more labels, e.g. dkim-relay or dkim-relay.example.com. */
const tsigKeyName = z
  .string()
  .transform((s) => s.trim().replace(/\.$/, '').toLowerCase())
  .refine((s) => s.length <= 253 && s.split('.').every((label) => /^[a-z0-9_-]{1,63}$/.test(label)), 'must be the key name as the server knows it, e.g. dkim-relay');

/** How the records of one zone are published (src/dns/publish/); a zone not listed is published by hand. */
const publishZone = z.discriminatedUnion('method', [
  z.strictObject({ zone: dnsName, method: z.literal('manual') }),
  z.strictObject({
    zone: dnsName,
    /** RFC 2136 dynamic update, signed with TSIG, over TCP to the primary server. */
    method: z.literal('rfc2136'),
    server: z.string().refine((s) => parseServerAddress(s) !== undefined, 'must be the primary server as IP or IP:PORT, e.g. 192.0.2.53 or [2001:db8::53]:5353'),
    tsig: z.strictObject({
      name: tsigKeyName,
      algorithm: z.enum(['hmac-sha256', 'hmac-sha512']).default('hmac-sha256'),
      /** The base64 secret (or the key as keymgr -t / tsig-keygen write it); mode 0600. */
      secretFile: z.string().min(1),
    }),
    timeoutSeconds: z.number().int().min(1).max(300).default(10),
  }),
  z.strictObject({
    zone: dnsName,
    /** A program (argv, no shell) that reads {zone, changes} as JSON on stdin and exits 0 once applied. */
    method: z.literal('command'),
    command: z.array(z.string().min(1)).nonempty(),
    timeoutSeconds: z.number().int().min(1).max(3600).default(60),
  }),
]);

const selectorLabel = z.string().regex(/^(?!-)[a-z0-9-]{1,63}(?<!-)$/, 'must be a selector of lower-case letters, digits and hyphens');

export const configSchema = z.strictObject({
  keys: z
    .strictObject({
      /** Key store: SQLite metadata and PKCS#8 PEM files. */
      dir: z.string().min(1).default('keys'),
      /** A key store shared by several relays: postgres://user@host/db (no password in it); unset: SQLite in dir. */
      database: z.string().refine(isPostgresUrl, 'must be a postgres:// or postgresql:// URL').optional(),
      /** File holding the database password (mode 0600). */
      passwordFile: z.string().min(1).optional(),
      /** File holding the key-encryption key of the private keys in the database (32 bytes, base64; mode 0600). */
      encryptionKeyFile: z.string().min(1).optional(),
    })
    .superRefine(sharedStoreSettings)
    .prefault({}),

  listen: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(2525),
      /** Implicit-TLS port (e.g. 465); needs tls.key and tls.cert. */
      tlsPort: z.number().int().min(0).max(65535).optional(),
      /** Name in the greeting and EHLO reply. */
      hostname: z.string().optional(),
      /** Add a Received: trace field (RFC 5321 §4.4) to every relayed message; off hides internal hosts. */
      addReceived: z.boolean().default(true),
      tls: z.strictObject({ key: z.string().min(1), cert: z.string().min(1), ciphers: z.string().min(1).optional(), minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).optional() }).superRefine(rules.tlsFiles).optional(),
      /** Exchange's send connectors default to 35 MB: a 25 MB attachment, base64-encoded. */
      maxMessageSize: z.number().int().min(1024).default(35 * 1024 * 1024),
      maxRecipients: z.number().int().min(1).default(1000),
      maxClients: z.number().int().min(1).default(200),
      /** Concurrent sessions from one IP address. */
      maxClientsPerIp: z.number().int().min(1).default(20),
      /** Idle time allowed between commands (and between data chunks). */
      socketTimeoutSeconds: z.number().int().min(1).default(120),
      /** Time allowed for one message's DATA from start to final dot: slow senders are cut off. */
      dataTimeoutSeconds: z.number().int().min(1).default(600),
      /** Longest SMTP command line accepted. */
      maxCommandLength: z.number().int().min(512).default(2048),
      /** Commands allowed before authentication when AUTH is required. */
      maxUnauthenticatedCommands: z.number().int().min(3).default(10),
      /** Concurrent sessions from outside access.networks that may still AUTH; apart from maxClients. */
      maxUnadmittedClients: z.number().int().min(1).default(20),
      /** Of those, held by one client address at most (IPv6: one /64), so one address cannot lock out every login. */
      maxUnadmittedClientsPerIp: z.number().int().min(1).default(4),
      /** Time a client outside access.networks has, from connecting, to authenticate; no command extends it. */
      unadmittedTimeoutSeconds: z.number().int().min(1).default(30),
      /** Time allowed for one command line, from its first byte to its end. */
      commandTimeoutSeconds: z.number().int().min(1).default(30),
      /** Time allowed for the TLS handshake on tlsPort, and for the one after STARTTLS. */
      tlsHandshakeTimeoutSeconds: z.number().int().min(1).default(10),
      /** Failed AUTH per client address before it is shut out for authPenaltySeconds. */
      maxAuthFailures: z.number().int().min(1).default(3),
      /** How long failed AUTH is remembered, and how long a client that used up maxAuthFailures is refused. */
      authPenaltySeconds: z.number().int().min(1).default(300),
      /** Failed AUTH per minute from all client addresses together; past it every AUTH is answered 454 until the minute refills. */
      maxAuthFailuresPerMinute: z.number().int().min(1).default(30),
    })
    .superRefine(rules.tlsPortNeedsTls)
    .prefault({}),

  access: z
    .strictObject({
      /** Clients admitted without AUTH, by IP or CIDR. */
      networks: z.array(z.string().superRefine(rules.network)).default(['127.0.0.0/8', '::1/128']),
      /** Accounts for SMTP AUTH (PLAIN, LOGIN). */
      users: z.array(user).default([]),
      /** Allow AUTH on a connection that is not encrypted. */
      allowInsecureAuth: z.boolean().default(false),
    })
    .prefault({}),

  signing: signingPolicy
    .extend({
      canonicalization: canonicalization.default('relaxed/relaxed'),
      headers: z.array(headerName).nonempty().default(DEFAULT_SIGNED_HEADERS as [string, ...string[]]),
      oversign: z.array(headerName).default(DEFAULT_OVERSIGNED_HEADERS),
      /** x= : signatures expire this long after signing; unset means never. */
      expireAfter: duration.optional(),
      /** l= : off by default, since content can be appended after the signed length. */
      bodyLength: z.boolean().default(false),
      /** What to do with mail whose From: domain has no active key. */
      unknownDomain: z.enum(['forward', 'reject', 'tempfail']).default('forward'),
      /** Per-domain overrides of canonicalization, headers and oversign. */
      domains: z.record(z.string(), signingPolicy).superRefine(rules.signingDomainKeys).default({}),
    })
    .prefault({}),

  /** Changes made before signing so the signature survives transit (RFC 6376 §5.3). */
  normalize: z
    .strictObject({
      /** Add Date: when missing. */
      addDate: z.boolean().default(true),
      /** Add Message-ID: (at the signing domain) when missing. */
      addMessageId: z.boolean().default(true),
      /** Body lines over 998 octets: re-encode their MIME part, or refuse the message (554). */
      longLines: z.enum(['reencode', 'reject']).default('reencode'),
      /** Body parts holding NUL octets (RFC 2045 §2.7-2.8 forbid them): re-encode as base64, or refuse the message (554). */
      nul: z.enum(['reencode', 'reject']).default('reencode'),
      /** Header fields with a line over 998 octets are refolded at whitespace. */
      refoldHeaders: z.boolean().default(true),
    })
    .prefault({}),

  headers: z
    .strictObject({
      /** Refuse (550) mail with a second copy of a single-instance header. */
      rejectDuplicates: z.boolean().default(true),
      singleInstance: z.array(headerName).default(DEFAULT_SINGLE_INSTANCE_HEADERS),
      /** Merge the copies of To, Cc, Bcc and Reply-To into one field each instead of refusing them. */
      mergeDuplicates: z.boolean().default(true),
      /** At most this many header fields, and this many octets of header. */
      maxCount: z.number().int().min(10).default(1000),
      maxSize: z.number().int().min(1024).default(1024 * 1024),
      /** At most this many physical header lines (folded lines included). */
      maxLines: z.number().int().min(100).default(5000),
      /** At most this many octets in one header field, its folded lines included (RFC 5322 §2.1.1 allows 998 per line). */
      maxFieldSize: z.number().int().min(1024).default(64 * 1024),
      /** More Received: fields than this means the mail is looping (RFC 5321 §6.3: normally at least 100). */
      maxHops: z.number().int().min(10).default(100),
      /** An address of another domain in the From: display name ("ceo@example.com" <p@other.example>): refuse (550) or allow. */
      displayNameAddress: z.enum(['refuse', 'allow']).default('refuse'),
    })
    .prefault({}),

  /** Optional From: domain restrictions per user or network; clients not listed may send as any domain. */
  clients: z.array(client).default([]),

  selfCheck: z
    .strictObject({
      onFailure: z.enum(['tempfail', 'reject', 'forward']).default('tempfail'),
      /** DMARC alignment of d= with the From: domain. */
      alignment: z.enum(['relaxed', 'strict']).default('relaxed'),
      /** Add an Authentication-Results-style X-DKIM-Relay-Check header (outside the signature). */
      traceHeader: z.boolean().default(false),
    })
    .prefault({}),

  delivery: z
    .strictObject({
      /** queue: 250 once the message is in the spool, then delivered with retries; sync: the upstream's own reply is the client's. */
      mode: z.enum(['queue', 'sync']).default('queue'),
      upstream: z.discriminatedUnion('type', [smtpUpstream, fileUpstream, mxUpstream]).superRefine(rules.upstreamAuthNeedsTls).prefault({ type: 'file' }),
    })
    .prefault({}),

  /** The durable queue (src/queue/): where accepted mail waits, and how long it is retried. */
  queue: z
    .strictObject({
      /** Spool directory: msg/ (one file per message), queue.db (the index), tmp/, corrupt/. */
      dir: z.string().min(1).default('spool'),
      /** First retry after a temporary failure; each later wait doubles, up to maxRetryInterval. */
      retryAfter: duration.default('1m'),
      maxRetryInterval: duration.default('1h'),
      /** A recipient still undelivered this long after the message came in is bounced. */
      maxAge: duration.default('5d'),
      /** Tell the sender a message is delayed once it has waited this long; unset: never. */
      delayWarning: duration.optional(),
      /** Files start-up recovery set aside in corrupt/ are removed this long after. */
      corruptRetention: duration.default('30d'),
    })
    .superRefine((queue, ctx) => {
      if (below(queue.maxRetryInterval, queue.retryAfter)) {
        ctx.addIssue({ code: 'custom', path: ['maxRetryInterval'], message: `must be at least retryAfter (${queue.retryAfter})` });
      }
      if (atMost(queue.maxAge, queue.delayWarning)) {
        ctx.addIssue({ code: 'custom', path: ['delayWarning'], message: `must be shorter than maxAge (${queue.maxAge}), or no warning would go out before the bounce` });
      }
    })
    .prefault({}),

  /** Delivery status notifications (RFC 3464) to the sender of mail that fails or is delayed in the queue. */
  bounce: z
    .strictObject({
      /** From: address of the notices; unset: mailer-daemon@<listen.hostname>. */
      from: z.email('must be a mail address such as mailer-daemon@relay.example.com').optional(),
      /** Originals larger than this many octets go back as their header only. */
      returnContentLimit: z.number().int().min(0).default(100 * 1024),
      /** Notices to one address at most this many times per addressWindow; the rest are dropped with one log line. */
      maxPerAddress: z.number().int().min(1).default(20),
      addressWindow: duration.default('1h'),
    })
    .prefault({}),

  /** DNS: which servers `dns check` asks, how long it waits, and how records are published. */
  dns: z
    .strictObject({
      /** Servers asked by `dns check`, "IP[:PORT]"; empty: the system resolver's (/etc/resolv.conf). */
      resolvers: z.array(z.string().refine(isNameserver, 'must be an IP address with an optional port, e.g. 192.0.2.53 or [2001:db8::53]:53')).default([]),
      /** Wait for one answer at most this long (UDP is tried twice, then the server counts as not answering). */
      timeoutSeconds: z.number().int().min(1).max(30).default(3),
      /** Per zone: how its records are published; the longest zone containing a record's name applies. */
      publish: z
        .array(publishZone)
        .default([])
        .refine((zones) => new Set(zones.map((entry) => entry.zone)).size === zones.length, 'lists a zone twice'),
      /** Delegated selectors: each domain's fixed selectors are CNAMEs into this zone, which the relay publishes to. */
      delegation: z
        .strictObject({
          zone: dnsName,
          /** Used in turn by rotation; two per algorithm a domain signs with. */
          selectors: z.array(selectorLabel).min(2).default(['sel1', 'sel2']).refine((s) => new Set(s).size === s.length, 'lists a selector twice'),
          /** Only these signing domains use delegated selectors; unset: all of them. */
          domains: z.array(dnsName).optional(),
        })
        .optional(),
    })
    .prefault({}),

  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      /** json: one JSON object a line; text: one human line. Unset: text on a terminal, else json. */
      format: z.enum(['json', 'text']).optional(),
    })
    .prefault({}),

  /** Prometheus metrics, /healthz, /readyz and the status page (src/daemon/http.ts), off the SMTP port. */
  metrics: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** IP:PORT; port 0 takes any free port. */
      listen: z.string().refine((s) => parseListenAddress(s) !== undefined, 'must be IP:PORT such as 127.0.0.1:9125 or [::1]:9125').default('127.0.0.1:9125'),
      /** HTTP basic auth for / and /metrics; the hash comes from `dkim-relay passwd`. */
      auth: z.strictObject({ user: z.string().min(1), passwordHash: z.string().superRefine(rules.passwordHash) }).optional(),
      /** Open HTTP connections in all, and from one client address; past either a connection is answered 503. */
      maxConnections: z.number().int().min(1).default(32),
      maxConnectionsPerIp: z.number().int().min(1).default(8),
      /** Time a client has to send a whole request, headers included. */
      requestTimeoutSeconds: z.number().int().min(1).max(300).default(10),
    })
    .superRefine((metrics, ctx) => {
      // The page names every signing domain and key, and the metrics the mail flow: not for the whole network to read.
      const address = parseListenAddress(metrics.listen);
      if (metrics.enabled && address && !isLoopback(address.host) && !metrics.auth) {
        ctx.addIssue({ code: 'custom', path: ['auth'], message: `is needed to listen on ${metrics.listen}, which is not a loopback address`, params: { hint: 'set metrics.auth (user, and a passwordHash from `dkim-relay passwd`), or listen on 127.0.0.1' } });
      }
    })
    .prefault({}),

  /** Unattended key rotation (src/rotation/): when to start one, and how long each step waits. */
  rotation: z
    .strictObject({
      /** Start a rotation when the active key has signed this long; unset: never on its own. */
      interval: duration.optional(),
      /** Per signing domain: its own interval ("off" for none) and waiting times. */
      domains: z.record(z.string(), rotationTimes.extend({ interval: z.union([duration, z.literal('off')]).optional() })).default({}),
      /** When the scheduler looks at DNS and takes the steps that are due (cron, 5 or 6 fields); "off": never, on this relay. */
      check: z.string().refine((e) => e === 'off' || validCron(e), 'must be a cron expression such as "*/15 * * * *", or "off"').default('*/15 * * * *'),
      publishFor: duration.default('48h'),
      retireAfter: duration.default('7d'),
      removeAfter: duration.default('30d'),
      stuckAfter: duration.default('7d'),
      /** Address told when a step needs a person. */
      notify: z.email('must be a mail address such as postmaster@example.com').optional(),
      /** Directory where the private keys of revoked keys are published; unset: never. */
      revealPrivateKeys: z.string().min(1).optional(),
    })
    .prefault({}),

  /** Demo mode: generate and activate a key for this domain when the store is empty. */
  demo: z.strictObject({ domain: z.string().superRefine(rules.domainName) }).optional(),
}).superRefine(retirementOutlastsSignatures).superRefine(signaturesOutlastQueue).superRefine(rotationOffWithSharedStore);

export type Config = z.infer<typeof configSchema>;
export type UpstreamConfig = Config['delivery']['upstream'];
export type SigningConfig = Config['signing'];
export type RotationConfig = Config['rotation'];
