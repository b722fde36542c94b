// The configuration schema: every key, its type and its default.
// config/dkim-relay.example.yaml documents the same keys for people.
import { z } from 'zod';
import * as rules from './rules.ts';

const canonicalization = z
  .string()
  .regex(/^(relaxed|simple)(\/(relaxed|simple))?$/, 'must be relaxed/relaxed, simple/simple, relaxed/simple or simple/relaxed');

/** What readers see and intermediaries should not change (SPEC §3). Never trace headers. */
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

const duration = z
  .string()
  .regex(/^[1-9]\d*[smhdw]$/, 'must be a duration above zero such as "90s", "30m", "12h", "7d" or "2w"');

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
  /** Whether the upstream takes 8-bit data (8BITMIME). */
  eightBitMime: z.boolean().default(true),
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

const user = z.strictObject({
  name: z.string().min(1),
  /** An scrypt hash made by `dkim-relay passwd`; never a clear-text password. */
  password: z.string().superRefine(rules.passwordHash),
});

/** RFC 5322 §3.6: fields that may occur at most once; a second copy is a known DKIM replay trick. */
export const DEFAULT_SINGLE_INSTANCE_HEADERS = [
  'From', 'Sender', 'Reply-To', 'To', 'Cc', 'Bcc', 'Subject', 'Date', 'Message-ID', 'In-Reply-To', 'References',
];

/** Who may send as which From: domains (SPEC §6); a client matches by user or network. */
const client = z
  .strictObject({
    user: z.string().min(1).optional(),
    networks: z.array(z.string().superRefine(rules.network)).optional(),
    /** From: domains this client may use (subdomains included). */
    domains: z.array(z.string().superRefine(rules.domainName)).nonempty(),
  })
  .refine((c) => c.user !== undefined || c.networks !== undefined, 'name a user or networks');

export const configSchema = z.strictObject({
  keys: z
    .strictObject({
      /** Key store: SQLite metadata and PKCS#8 PEM files. */
      dir: z.string().min(1).default('keys'),
    })
    .prefault({}),

  listen: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(2525),
      /** Implicit-TLS port (e.g. 465); needs tls.key and tls.cert. */
      tlsPort: z.number().int().min(0).max(65535).optional(),
      /** Name in the greeting and EHLO reply. */
      hostname: z.string().optional(),
      tls: z.strictObject({ key: z.string().min(1), cert: z.string().min(1) }).superRefine(rules.tlsFiles).optional(),
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

  /** Changes made before signing so the signature survives transit (SPEC §3). */
  normalize: z
    .strictObject({
      /** Add Date: when missing. */
      addDate: z.boolean().default(true),
      /** Add Message-ID: (at the signing domain) when missing. */
      addMessageId: z.boolean().default(true),
      /** Body lines over 998 octets: re-encode their MIME part, or refuse the message (554). */
      longLines: z.enum(['reencode', 'reject']).default('reencode'),
      /** Header fields with a line over 998 octets are refolded at whitespace. */
      refoldHeaders: z.boolean().default(true),
    })
    .prefault({}),

  headers: z
    .strictObject({
      /** Refuse (550) mail with a second copy of a single-instance header. */
      rejectDuplicates: z.boolean().default(true),
      singleInstance: z.array(headerName).default(DEFAULT_SINGLE_INSTANCE_HEADERS),
      /** At most this many header fields, and this many octets of header. */
      maxCount: z.number().int().min(10).default(1000),
      maxSize: z.number().int().min(1024).default(1024 * 1024),
      /** At most this many physical header lines (folded lines included). */
      maxLines: z.number().int().min(100).default(5000),
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
      mode: z.enum(['sync']).default('sync'),
      upstream: z.discriminatedUnion('type', [smtpUpstream, fileUpstream]).superRefine(rules.upstreamAuthNeedsTls).prefault({ type: 'file' }),
    })
    .prefault({}),

  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    })
    .prefault({}),

  /** Demo mode: generate and activate a key for this domain when the store is empty. */
  demo: z.strictObject({ domain: z.string().superRefine(rules.domainName) }).optional(),
});

export type Config = z.infer<typeof configSchema>;
export type UpstreamConfig = Config['delivery']['upstream'];
export type SigningConfig = Config['signing'];
