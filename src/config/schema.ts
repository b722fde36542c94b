// The configuration schema: every key, its type and its default.
// Each key carries its description: npm run docs:config renders them into
// docs/configuration.md (src/config/reference.ts).
import { isIP } from 'node:net';
import { validate as validCron } from 'node-cron';
import { z } from 'zod';
import { DNS_SERVER_ADDRESS, isNameserver } from '../dns/nameserver.ts';
import { isValidDomain } from '../common/names.ts';
import { isLoopback, LISTEN_ADDRESS, parseHostPort } from '../common/host-port.ts';
import { isPostgresUrl } from '../keys/pg-url.ts';
import { durationSeconds } from './duration.ts';
import * as rules from './rules.ts';

const canonicalization = z
  .string()
  .regex(/^(relaxed|simple)(\/(relaxed|simple))?$/, 'must be relaxed/relaxed, simple/simple, relaxed/simple or simple/relaxed');

/** What readers see and intermediaries should not change. Never trace headers, which every hop may add (RFC 6376 §5.4). */
export const DEFAULT_SIGNED_HEADERS = [
  'From',
  'Reply-To',
  'Subject',
  'Date',
  'To',
  'Cc',
  'Message-ID',
  'In-Reply-To',
  'References',
  'MIME-Version',
  'Content-Type',
  'Content-Transfer-Encoding',
  'List-Id',
  'List-Unsubscribe',
  'List-Unsubscribe-Post',
];
export const DEFAULT_OVERSIGNED_HEADERS = ['From', 'Subject', 'Reply-To', 'To', 'Cc', 'Date', 'Message-ID'];

const headerName = z.string().regex(/^[!-9;-~]+$/, 'must be a header field name such as "Subject"');

/** Signing settings that a domain may override. */
const signingPolicy = z.strictObject({
  canonicalization: canonicalization.optional().describe("this domain's `c=`, as `signing.canonicalization`"),
  headers: z.array(headerName).nonempty().optional().describe("this domain's signed header fields, as `signing.headers`"),
  oversign: z.array(headerName).optional().describe("this domain's oversigned header fields, as `signing.oversign`"),
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
  publishFor: duration.optional().describe("this domain's `rotation.publishFor`"),
  retireAfter: duration.optional().describe("this domain's `rotation.retireAfter`; must exceed `signing.expireAfter`"),
  removeAfter: duration.optional().describe("this domain's `rotation.removeAfter`"),
  stuckAfter: duration.optional().describe("this domain's `rotation.stuckAfter`"),
});

/**
 * A message may wait in the queue up to queue.maxAge before it leaves; a
 * signature that expires (x=, RFC 6376 §3.5) before then would arrive dead.
 */
function signaturesOutlastQueue(config: { signing: { expireAfter?: string | undefined }; queue: { maxAge: string } }, ctx: z.core.$RefinementCtx): void {
  const expireAfter = config.signing.expireAfter;
  if (atMost(expireAfter, config.queue.maxAge)) {
    ctx.addIssue({
      code: 'custom',
      path: ['signing', 'expireAfter'],
      message: `must be longer than queue.maxAge (${config.queue.maxAge}), or mail delivered late from the queue would carry an expired signature`,
    });
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
function sharedStoreSettings(
  keys: { database?: string | undefined; passwordFile?: string | undefined; encryptionKeyFile?: string | undefined },
  ctx: z.core.$RefinementCtx,
): void {
  if (keys.database === undefined) {
    for (const field of ['passwordFile', 'encryptionKeyFile'] as const) {
      if (keys[field] !== undefined) ctx.addIssue({ code: 'custom', path: [field], message: 'applies only with keys.database (a PostgreSQL key store)' });
    }
    return;
  }
  if (!isPostgresUrl(keys.database)) return;
  if (keys.encryptionKeyFile === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['encryptionKeyFile'],
      message: 'is required with keys.database: make one with (umask 077; openssl rand -base64 32 > /etc/dkim-relay/kek)',
    });
  }
  if (new URL(keys.database).password !== '') {
    ctx.addIssue({ code: 'custom', path: ['database'], message: 'must not hold a password: put it in a file of mode 0600 named by keys.passwordFile' });
  }
}

const smtpUpstream = z.strictObject({
  type: z.literal('smtp').describe('a smart host'),
  host: z.string().min(1).describe('the smart host'),
  port: z.number().int().min(1).max(65535).default(25).describe('its port: 587 for STARTTLS submission, 465 with `secure`'),
  secure: z.boolean().default(false).describe('implicit TLS (usually port 465)'),
  requireTLS: z.boolean().default(false).describe('refuse to send unless the smart host offers STARTTLS'),
  rejectUnauthorized: z.boolean().default(true).describe("check the smart host's certificate"),
  auth: z
    .strictObject({
      user: z.string().min(1).describe('user name at the smart host'),
      pass: z.string().describe('its password, in clear (protect the file); masked by `config check`'),
    })
    .optional()
    .describe('login at the smart host, `{user, pass}` (a clear-text password: protect the file); needs `secure` or `requireTLS`'),
  allowInsecureAuth: z.boolean().default(false).describe('allow `auth` without `secure` or `requireTLS`, the password then going in clear (leave off)'),
  maxConnections: z.number().int().min(1).max(100).default(5).describe('pooled connections to the smart host, kept open and reused'),
  dualSign: z
    .boolean()
    .default(true)
    .describe(
      'add RSA and Ed25519 signatures when both keys are active; `false`: one signature (RSA, or Ed25519 when there is no RSA key), for smart hosts that refuse mail with more than one DKIM-Signature',
    ),
  eightBitMime: z
    .union([z.literal('auto'), z.boolean()])
    .default('auto')
    .describe('the smart host takes 8-bit data (8BITMIME): `auto` learns it from its EHLO reply; `true` or `false` override what it announces'),
  name: z.string().superRefine(rules.hostName).optional().describe('name given in EHLO to the smart host; unset: `listen.hostname`, else the host name'),
  timeoutSeconds: z.number().int().min(1).max(3600).default(60).describe('connect, greeting and socket timeout, in seconds'),
});

const fileUpstream = z.strictObject({
  type: z.literal('file').describe('a folder, for trying the relay out'),
  dir: z.string().min(1).default('outbox').describe('folder receiving one `.eml` file per message; created 0700, files 0600'),
  dualSign: z
    .boolean()
    .default(true)
    .describe(
      'add RSA and Ed25519 signatures when both keys are active; `false`: one signature (RSA, or Ed25519 when there is no RSA key), for smart hosts that refuse mail with more than one DKIM-Signature',
    ),
  eightBitMime: z.boolean().default(true).describe('the folder takes 8-bit data'),
});

/** Direct delivery to each recipient domain's MX hosts, for sites without a smart host. */
const mxUpstream = z.strictObject({
  type: z.literal('mx').describe("each recipient domain's MX hosts, for sites without a smart host"),
  port: z.number().int().min(1).max(65535).default(25).describe('port of the receiving hosts; 25 everywhere but in tests'),
  resolver: z
    .array(z.string().refine(isNameserver, 'must be an IP address with an optional port, e.g. 192.0.2.53 or [2001:db8::53]:53'))
    .nonempty()
    .optional()
    .describe("nameservers asked for MX and address records, `IP[:PORT]` each; unset: the system's"),
  heloName: z
    .string()
    .superRefine(rules.domainName)
    .optional()
    .describe('name given in EHLO; an MX of that name, or a host greeting with it, is this relay (a loop); unset: the host name'),
  allowNetworks: z
    .array(z.string().superRefine(rules.network))
    .default([])
    .describe(
      "inward addresses (loopback, link-local, private, multicast, this host's own) that MX/A/AAAA answers and address literals may still lead to, as CIDR ranges or addresses",
    ),
  timeoutSeconds: z
    .number()
    .int()
    .min(1)
    .max(3600)
    .default(60)
    .describe('connect, greeting and socket timeout, in seconds; also the longest wait for a free connection slot'),
  requireTLS: z.boolean().default(false).describe('deliver only over STARTTLS (the certificate is still not required to verify)'),
  maxConnections: z.number().int().min(1).max(1000).default(20).describe('connections open at once, in all'),
  maxConnectionsPerDomain: z.number().int().min(1).max(100).default(3).describe('connections open at once to one recipient domain'),
  dualSign: z
    .boolean()
    .default(true)
    .describe(
      'add RSA and Ed25519 signatures when both keys are active; `false`: one signature (RSA, or Ed25519 when there is no RSA key), for smart hosts that refuse mail with more than one DKIM-Signature',
    ),
  eightBitMime: z
    .literal(false, { error: 'must be false: with direct MX delivery the next hop is unknown when signing, so content is always made 7-bit' })
    .default(false)
    .describe('always false: the next hop is unknown when signing, so 8-bit content is made 7-bit first (RFC 6376 §5.3)'),
});

const user = z.strictObject({
  name: z.string().min(1).describe('the user name given in SMTP AUTH'),
  password: z.string().superRefine(rules.passwordHash).describe('an scrypt hash made by `dkim-relay passwd NAME`; never a clear-text password'),
});

/** RFC 5322 §3.6: fields that may occur at most once; a second copy is a known DKIM replay trick. */
export const DEFAULT_SINGLE_INSTANCE_HEADERS = ['From', 'Sender', 'Reply-To', 'To', 'Cc', 'Bcc', 'Subject', 'Date', 'Message-ID', 'In-Reply-To', 'References'];

/** Who may send as which From: domains; a client matches by user or network. */
const client = z
  .strictObject({
    user: z.string().min(1).optional().describe('the AUTH user this entry holds'),
    networks: z.array(z.string().superRefine(rules.network)).optional().describe('the client addresses (IP or CIDR) this entry holds'),
    domains: z
      .array(z.string().superRefine(rules.domainName))
      .nonempty()
      .describe('domains (subdomains included) this client may use in `From:`, `Sender:` and `MAIL FROM` (which may also be `<>`)'),
    name: z
      .string()
      .superRefine(rules.clientName)
      .optional()
      .describe(
        'a short name for this client, unique among clients (letters, digits, hyphens); it starts the selectors of its own keys, e.g. `scanner-202612a`',
      ),
    keys: z
      .enum(['domain', 'own'])
      .default('domain')
      .describe(
        "`domain`: sign this client's mail with the domain's keys; `own`: with a key chain of its own (`keys generate --client NAME`), revoked and rotated apart",
      ),
    whenNoKey: z
      .enum(['unknownDomain', 'domain'])
      .optional()
      .describe(
        "with `keys: own`, when the client's chain has no active key for the domain (none yet, or revoked): `unknownDomain` (default) applies `signing.unknownDomain`, `domain` signs with the domain's keys",
      ),
  })
  .refine((c) => c.user !== undefined || c.networks !== undefined, 'name a user or networks')
  .superRefine(rules.ownKeysNeedName);

/** A DNS zone or domain: lower case, without the final dot. */
const dnsName = z
  .string()
  .transform((s) => s.trim().replace(/\.$/, '').toLowerCase())
  .refine(isValidDomain, 'must be a domain name such as example.com');

/** A TSIG key's name as the server knows it: one or more labels, e.g. dkim-relay or dkim-relay.example.com. */
const tsigKeyName = z
  .string()
  .transform((s) => s.trim().replace(/\.$/, '').toLowerCase())
  .refine(
    (s) => s.length <= 253 && s.split('.').every((label) => /^[a-z0-9_-]{1,63}$/.test(label)),
    'must be the key name as the server knows it, e.g. dkim-relay',
  );

/** How the records of one zone are published (src/dns/publish/); a zone not listed is published by hand. */
const publishZone = z.discriminatedUnion('method', [
  z.strictObject({
    zone: dnsName.describe('the zone; a record belongs to the longest listed zone containing its name'),
    method: z.literal('manual').describe('by hand (the relay prints the records, and tells `rotation.notify`)'),
  }),
  z.strictObject({
    zone: dnsName.describe('the zone; a record belongs to the longest listed zone containing its name'),
    method: z.literal('rfc2136').describe('RFC 2136 dynamic update, signed with TSIG, over TCP to the primary server'),
    server: z
      .string()
      .refine((s) => parseHostPort(s, DNS_SERVER_ADDRESS) !== undefined, 'must be the primary server as IP or IP:PORT, e.g. 192.0.2.53 or [2001:db8::53]:5353')
      .describe("the zone's primary server, `IP[:PORT]` (port 53 unless given; `[IPv6]:PORT`)"),
    tsig: z
      .strictObject({
        name: tsigKeyName.describe("the TSIG key's name as the server knows it"),
        algorithm: z.enum(['hmac-sha256', 'hmac-sha512']).default('hmac-sha256').describe('the TSIG algorithm'),
        secretFile: z.string().min(1).describe('the base64 secret, or the key as `keymgr -t` or `tsig-keygen` write it; refused when others can read it'),
      })
      .describe("the TSIG key that signs each update; the server's answer must be signed with it too"),
    timeoutSeconds: z.number().int().min(1).max(300).default(10).describe("how long to wait for the server's answer, in seconds"),
  }),
  z.strictObject({
    zone: dnsName.describe('the zone; a record belongs to the longest listed zone containing its name'),
    method: z.literal('command').describe("a program of your own (a DNS provider's CLI or API script)"),
    command: z
      .array(z.string().min(1))
      .nonempty()
      .describe('program and arguments (no shell); it reads `{zone, changes}` as JSON on stdin and exits 0 once they are applied'),
    timeoutSeconds: z.number().int().min(1).max(3600).default(60).describe('how long the program may run, in seconds'),
  }),
]);

const selectorLabel = z.string().regex(/^(?!-)[a-z0-9-]{1,63}(?<!-)$/, 'must be a selector of lower-case letters, digits and hyphens');

export const configSchema = z
  .strictObject({
    keys: z
      .strictObject({
        dir: z
          .string()
          .min(1)
          .default('keys')
          .describe(
            'key store: PKCS#8 PEM files and their metadata in `keys.db` (SQLite); give an absolute path in production; with `keys.database`, still where each relay keeps its local files',
          ),
        database: z
          .string()
          .refine(isPostgresUrl, 'must be a postgres:// or postgresql:// URL')
          .optional()
          .describe(
            'a key store shared by several relays: `postgresql://user@host/db` (`?sslmode=` as libpq reads it; no password in it); unset: SQLite in `keys.dir`',
          ),
        passwordFile: z.string().min(1).optional().describe('file holding the database password, mode 0600; only with `keys.database`'),
        encryptionKeyFile: z
          .string()
          .min(1)
          .optional()
          .describe(
            'file holding the key-encryption key of the private keys in the database: 32 random bytes in base64 (`openssl rand -base64 32`), mode 0600, the same on every relay; required with `keys.database`',
          ),
        pkcs11: z
          .strictObject({
            module: z.string().min(1).describe('the PKCS#11 module (shared library) of the HSM, e.g. `/usr/lib/softhsm/libsofthsm2.so`'),
            token: z.string().min(1).describe('the label of the token holding the keys'),
            pinFile: z.string().min(1).describe('file holding the user PIN, mode 0600 (refused otherwise); the PIN is never logged or printed'),
            newKeys: z
              .boolean()
              .default(false)
              .describe('generate every new key in the token (`keys generate`, `keys rotate`, the rotation scheduler); `false`: only with `--in-token`'),
          })
          .optional()
          .describe('signing keys held in a PKCS#11 token (an HSM): generated there, they never leave it; unset: no token'),
      })
      .superRefine(sharedStoreSettings)
      .prefault({})
      .describe('the key store'),

    listen: z
      .strictObject({
        host: z.string().min(1).default('127.0.0.1').describe('address to listen on (`0.0.0.0` or `::` for all)'),
        port: z.number().int().min(0).max(65535).default(2525).describe('plain SMTP port, with STARTTLS when `listen.tls` is set; `0`: any free port'),
        tlsPort: z.number().int().min(0).max(65535).optional().describe('implicit-TLS port (e.g. 465); needs `listen.tls`'),
        hostname: z
          .string()
          .superRefine(rules.hostName)
          .optional()
          .describe('name in the greeting, the EHLO reply and the `Received:` field; unset: the host name'),
        addReceived: z
          .boolean()
          .default(true)
          .describe("add a `Received:` trace field (RFC 5321 §4.4) to every relayed message, never signed; `false` hides the client's name and address"),
        tls: z
          .strictObject({
            key: z.string().min(1).describe('PEM private key for STARTTLS and `tlsPort`, unencrypted, readable by the relay'),
            cert: z.string().min(1).describe('PEM certificate (chain) matching `key`, without a private key in the file'),
            ciphers: z
              .string()
              .min(1)
              .optional()
              .describe(
                "TLS 1.2 suites as an OpenSSL cipher list (TLS 1.3 suites stay OpenSSL's); unset: ECDHE with AES-GCM or ChaCha20-Poly1305 only; a weakening applies to every client (see docs/security.md)",
              ),
            minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).optional().describe('oldest TLS version accepted; unset: `TLSv1.2`'),
          })
          .optional()
          .describe(
            'key and certificate for STARTTLS and `tlsPort`; without them no STARTTLS and no AUTH. `serve`, a reload and `config check` check that both are readable and match; the commands that never listen (`keys`, `dns`, `queue`, `status`, `sign`, `verify`) do not read them, so a broken certificate does not lock an administrator out of them',
          ),
        maxMessageSize: z
          .number()
          .int()
          .min(1024)
          .default(35 * 1024 * 1024)
          .describe("larger messages get `552 5.3.4`; the default, 35 MiB, is that of Exchange's send connectors (a 25 MB attachment, base64-encoded)"),
        maxRecipients: z.number().int().min(1).default(1000).describe('recipients per message'),
        maxClients: z.number().int().min(1).default(200).describe('simultaneous connections from `access.networks` (and clients that logged in)'),
        maxClientsPerIp: z.number().int().min(1).default(20).describe('simultaneous connections from one address'),
        socketTimeoutSeconds: z.number().int().min(1).default(120).describe('idle time allowed between commands and between chunks of a message, in seconds'),
        dataTimeoutSeconds: z
          .number()
          .int()
          .min(1)
          .default(600)
          .describe("time allowed for one message's `DATA`, start to final dot, in seconds; slower senders are cut off"),
        maxCommandLength: z.number().int().min(512).default(2048).describe('longest SMTP command line, in octets'),
        maxUnauthenticatedCommands: z.number().int().min(3).default(10).describe('commands a client outside `access.networks` may send before it logs in'),
        maxUnadmittedClients: z
          .number()
          .int()
          .min(1)
          .default(20)
          .describe('simultaneous connections from other addresses that may still log in; a pool apart from `maxClients`'),
        maxUnadmittedClientsPerIp: z
          .number()
          .int()
          .min(1)
          .default(4)
          .describe('of those, held by one address (IPv6: one /64) at most, so one address cannot lock out every login'),
        unadmittedTimeoutSeconds: z
          .number()
          .int()
          .min(1)
          .default(30)
          .describe("time a client outside `access.networks` has, from its session's start, to log in, in seconds; no command extends it"),
        commandTimeoutSeconds: z.number().int().min(1).default(30).describe('time allowed for one command line, first byte to end, in seconds'),
        tlsHandshakeTimeoutSeconds: z
          .number()
          .int()
          .min(1)
          .default(10)
          .describe('time allowed for the TLS handshake on `tlsPort` and after `STARTTLS`, in seconds'),
        maxAuthFailures: z
          .number()
          .int()
          .min(1)
          .default(3)
          .describe('failed logins per address (IPv6: per /64) before it is shut out for `authPenaltySeconds`'),
        authPenaltySeconds: z
          .number()
          .int()
          .min(1)
          .default(300)
          .describe('how long failed logins are remembered, and how long an address that used them up is refused, in seconds'),
        maxAuthFailuresPerMinute: z
          .number()
          .int()
          .min(1)
          .default(30)
          .describe('failed logins per minute from all addresses together; past it AUTH is answered `454` (nothing checked) until the budget refills'),
      })
      .superRefine(rules.tlsPort)
      .prefault({})
      .describe('the SMTP listener: address, TLS, limits and timeouts'),

    access: z
      .strictObject({
        networks: z
          .array(z.string().superRefine(rules.network))
          .default(['127.0.0.0/8', '::1/128'])
          .describe('clients admitted without AUTH, by IP address or CIDR range; IPv4 in four-part decimal (`10.1.0.0/16`, not `10.1/16`)'),
        users: z.array(user).default([]).describe('SMTP AUTH (PLAIN, LOGIN) accounts, offered over TLS only'),
        allowInsecureAuth: z.boolean().default(false).describe('allow AUTH on a connection that is not encrypted (leave off)'),
      })
      .prefault({})
      .describe('who may relay: client networks and SMTP AUTH accounts'),

    signing: signingPolicy
      .extend({
        canonicalization: canonicalization
          .default('relaxed/relaxed')
          .describe('`c=`: `relaxed` or `simple` for the header, optionally `/relaxed` or `/simple` for the body; `relaxed` alone means `relaxed/simple`'),
        headers: z
          .array(headerName)
          .nonempty()
          .default(DEFAULT_SIGNED_HEADERS as [string, ...string[]])
          .describe('header fields signed when present; `From` always, trace fields never'),
        oversign: z
          .array(headerName)
          .default(DEFAULT_OVERSIGNED_HEADERS)
          .describe('header fields listed in `h=` once more than they occur, so no copy can be added after signing'),
        expireAfter: duration.optional().describe('`x=`: signatures expire this long after signing; unset: never; must exceed `queue.maxAge`'),
        bodyLength: z.boolean().default(false).describe('`l=` (leave off: it lets anyone append content that still verifies)'),
        unknownDomain: z
          .enum(['forward', 'reject', 'tempfail'])
          .default('forward')
          .describe('mail whose `From:` domain has no active key: send it unsigned, refuse it (550) or defer it (451)'),
        domains: z
          .record(z.string(), signingPolicy)
          .superRefine(rules.signingDomainKeys)
          .default({})
          .describe('per-domain overrides of `canonicalization`, `headers` and `oversign`, keyed by the signing (`d=`) domain, in lower case'),
      })
      .prefault({})
      .describe('how messages are signed'),

    normalize: z
      .strictObject({
        addDate: z.boolean().default(true).describe('add `Date:` when missing, before signing'),
        addMessageId: z.boolean().default(true).describe('add `Message-ID:` (at the signing domain) when missing'),
        longLines: z
          .enum(['reencode', 'reject'])
          .default('reencode')
          .describe('body lines over 998 octets: re-encode their MIME part, or refuse the message (554)'),
        nul: z
          .enum(['reencode', 'reject'])
          .default('reencode')
          .describe('body parts holding NUL octets (RFC 2045 §2.7–2.8 forbid them): re-encode them as base64, or refuse the message (554)'),
        refoldHeaders: z.boolean().default(true).describe('refold header fields with a line over 998 octets at whitespace'),
      })
      .prefault({})
      .describe('changes made before signing so the signature survives transit (RFC 6376 §5.3)'),

    headers: z
      .strictObject({
        rejectDuplicates: z.boolean().default(true).describe('refuse (550) a second copy of a field in `headers.singleInstance`'),
        singleInstance: z
          .array(headerName)
          .default(DEFAULT_SINGLE_INSTANCE_HEADERS)
          .describe('fields that may occur once (RFC 5322 §3.6); a second copy is a known DKIM replay trick'),
        mergeDuplicates: z
          .boolean()
          .default(true)
          .describe('merge the copies of `To`, `Cc`, `Bcc` and `Reply-To` into one field each instead of refusing them'),
        maxCount: z.number().int().min(10).default(1000).describe('most header fields per message'),
        maxSize: z
          .number()
          .int()
          .min(1024)
          .default(1024 * 1024)
          .describe('largest header block, in octets'),
        maxLines: z.number().int().min(100).default(5000).describe('most physical header lines, folded lines included'),
        maxFieldSize: z
          .number()
          .int()
          .min(1024)
          .default(64 * 1024)
          .describe('largest header field, its folded lines together, in octets (RFC 5322 §2.1.1 allows 998 per line)'),
        maxHops: z.number().int().min(10).default(100).describe('most `Received:` fields; more means the mail loops (RFC 5321 §6.3) and gets `554 5.4.6`'),
        displayNameAddress: z
          .enum(['refuse', 'allow'])
          .default('refuse')
          .describe(
            'a `From:` or `Sender:` display name or comment showing an address of another domain than the mailbox\'s (`"ceo@example.com" <p@other.example>`): refuse (550) or allow',
          ),
      })
      .prefault({})
      .describe('limits and rules for the header block'),

    clients: z
      .array(client)
      .default([])
      .superRefine(rules.uniqueClientNames)
      .describe(
        'which domains a user or network may use in `From:`, `Sender:` and `MAIL FROM`; each entry names a user, networks or both; clients matching no entry may use any domain',
      ),

    selfCheck: z
      .strictObject({
        onFailure: z
          .enum(['tempfail', 'reject', 'forward'])
          .default('tempfail')
          .describe('what a failed self-check does: defer (451, the client retries), refuse (554), or send the message anyway'),
        alignment: z
          .enum(['relaxed', 'strict'])
          .default('relaxed')
          .describe('DMARC alignment of `d=` with the `From:` domain: same organisational domain (`relaxed`) or same domain (`strict`)'),
        traceHeader: z.boolean().default(false).describe('add an `X-DKIM-Relay-Check:` header with the result (outside the signature)'),
      })
      .prefault({})
      .describe('the check of every signature before the message leaves'),

    delivery: z
      .strictObject({
        mode: z
          .enum(['queue', 'sync'])
          .default('queue')
          .describe(
            "`queue`: `250` once the message is in the spool, then delivered with retries and notices; `sync`: the client's `DATA` gets the upstream's own reply; needs a restart to change",
          ),
        upstream: z
          .discriminatedUnion('type', [smtpUpstream, fileUpstream, mxUpstream])
          .superRefine(rules.upstreamAuthNeedsTls)
          .prefault({ type: 'file' })
          .describe('where signed mail goes, by `type`'),
      })
      .prefault({})
      .describe('where and how signed mail is delivered'),

    queue: z
      .strictObject({
        dir: z
          .string()
          .min(1)
          .default('spool')
          .describe(
            'spool directory: `queue.db` (the index, and messages of up to 128 KiB), `msg/` (a file per larger message), `tmp/`, `corrupt/`; needs a restart to change',
          ),
        retryAfter: duration.default('1m').describe('first retry after a temporary failure; each later wait doubles, up to `maxRetryInterval`'),
        maxRetryInterval: duration.default('1h').describe('longest wait between attempts (at least `retryAfter`)'),
        maxAge: duration.default('5d').describe('a recipient still undelivered this long after the message came in is bounced'),
        delayWarning: duration.optional().describe('tell the sender once a message has waited this long (shorter than `maxAge`); unset: never'),
        corruptRetention: duration
          .default('30d')
          .describe('files start-up recovery set aside in `corrupt/` are removed this long after they were moved there (checked hourly)'),
      })
      .superRefine((queue, ctx) => {
        if (below(queue.maxRetryInterval, queue.retryAfter)) {
          ctx.addIssue({ code: 'custom', path: ['maxRetryInterval'], message: `must be at least retryAfter (${queue.retryAfter})` });
        }
        if (atMost(queue.maxAge, queue.delayWarning)) {
          ctx.addIssue({
            code: 'custom',
            path: ['delayWarning'],
            message: `must be shorter than maxAge (${queue.maxAge}), or no warning would go out before the bounce`,
          });
        }
      })
      .prefault({})
      .describe('the durable queue: where accepted mail waits, and how long it is retried (queue mode)'),

    bounce: z
      .strictObject({
        from: z
          .email('must be a mail address such as mailer-daemon@relay.example.com')
          .optional()
          .describe('`From:` of the notices; use a domain the relay signs for; unset: `mailer-daemon@` and `listen.hostname`'),
        returnContentLimit: z
          .number()
          .int()
          .min(0)
          .default(100 * 1024)
          .describe('originals larger than this many octets go back in a notice as their header only'),
        maxPerAddress: z
          .number()
          .int()
          .min(1)
          .default(20)
          .describe('notices to one address per `addressWindow` at most; more are dropped with one log line per address and window'),
        addressWindow: duration.default('1h').describe('the window of `maxPerAddress`'),
      })
      .prefault({})
      .describe('delivery status notifications (RFC 3464) to the sender of mail that fails or is delayed in the queue'),

    dns: z
      .strictObject({
        resolvers: z
          .array(z.string().refine(isNameserver, 'must be an IP address with an optional port, e.g. 192.0.2.53 or [2001:db8::53]:53'))
          .default([])
          .describe(
            "servers asked by `dns check`, `status` and the rotation scheduler when no `--nameserver` is given, `IP[:PORT]` each; empty: the system resolver's (/etc/resolv.conf)",
          ),
        timeoutSeconds: z
          .number()
          .int()
          .min(1)
          .max(30)
          .default(3)
          .describe('wait for one DNS answer at most this long, in seconds; UDP is tried twice, then the server counts as not answering'),
        publish: z
          .array(publishZone)
          .default([])
          .refine((zones) => new Set(zones.map((entry) => entry.zone)).size === zones.length, 'lists a zone twice')
          .describe("how each zone's records are published, by `method`; a zone not listed is published by hand"),
        delegation: z
          .strictObject({
            zone: dnsName.describe('the zone the CNAMEs point into, which the relay publishes to'),
            selectors: z
              .array(selectorLabel)
              .min(2)
              .default(['sel1', 'sel2'])
              .refine((s) => new Set(s).size === s.length, 'lists a selector twice')
              .describe('the fixed selectors, used in turn by rotation; two per algorithm a domain signs with'),
            domains: z.array(dnsName).optional().describe('the signing domains that use delegated selectors; unset: all of them'),
          })
          .optional()
          .describe("delegated selectors: each domain's fixed selectors are CNAMEs into this zone; unset: off"),
      })
      .prefault({})
      .describe('DNS: which servers are asked, how long the relay waits, and how records are published'),

    log: z
      .strictObject({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('log detail'),
        format: z
          .enum(['json', 'text'])
          .optional()
          .describe('`json`: one JSON object a line; `text`: one human line; unset: `text` on a terminal, else `json`; read at start only'),
      })
      .prefault({})
      .describe('the log on standard output'),

    metrics: z
      .strictObject({
        enabled: z.boolean().default(true).describe('open the metrics, health and status-page listener'),
        listen: z
          .string()
          .refine((s) => parseHostPort(s, LISTEN_ADDRESS) !== undefined, 'must be IP:PORT such as 127.0.0.1:9125 or [::1]:9125')
          .default('127.0.0.1:9125')
          .describe('its address, `IP:PORT`; port 0 takes any free port; an address that is not loopback needs `metrics.auth`'),
        auth: z
          .strictObject({
            user: z.string().min(1).describe('the user name asked'),
            passwordHash: z.string().superRefine(rules.passwordHash).describe('an scrypt hash made by `dkim-relay passwd`'),
          })
          .optional()
          .describe('HTTP basic auth for `/` and `/metrics` (and the details of `/healthz`), `{user, passwordHash}`; the hash comes from `dkim-relay passwd`'),
        maxConnections: z.number().int().min(1).default(32).describe('open HTTP connections in all; past it a connection is answered `503` and closed'),
        maxConnectionsPerIp: z.number().int().min(1).default(8).describe('open HTTP connections from one address; past it `503`'),
        requestTimeoutSeconds: z.number().int().min(1).max(300).default(10).describe('time a client has to send a whole request, headers included, in seconds'),
      })
      .superRefine((metrics, ctx) => {
        // The page names every signing domain and key, and the metrics the mail flow: not for the whole network to read.
        const address = parseHostPort(metrics.listen, LISTEN_ADDRESS);
        if (metrics.enabled && address && !isLoopback(address.host) && !metrics.auth) {
          ctx.addIssue({
            code: 'custom',
            path: ['auth'],
            message: `is needed to listen on ${metrics.listen}, which is not a loopback address`,
            params: { hint: 'set metrics.auth (user, and a passwordHash from `dkim-relay passwd`), or listen on 127.0.0.1' },
          });
        }
      })
      .prefault({})
      .describe('Prometheus metrics, `/healthz`, `/readyz` and the status page, on a listener of their own'),

    rotation: z
      .strictObject({
        interval: duration.optional().describe('start a rotation when the active key has signed this long; unset: never on its own'),
        domains: z
          .record(
            z.string(),
            rotationTimes.extend({
              interval: z
                .union([duration, z.literal('off')])
                .optional()
                .describe("this domain's `rotation.interval`; `off`: no rotation for it"),
            }),
          )
          .default({})
          .describe('per signing domain: its own `interval` (`off` for none) and waiting times'),
        check: z
          .string()
          .refine((e) => e === 'off' || validCron(e), 'must be a cron expression such as "*/15 * * * *", or "off"')
          .default('*/15 * * * *')
          .describe(
            'when the scheduler looks at DNS, looks up SPF and DMARC, and takes the steps that are due (cron, 5 or 6 fields); `off`: never on this relay (another relay sharing the key store manages its keys, or it has none to manage)',
          ),
        publishFor: duration.default('48h').describe("every DNS server asked must serve a new key's record this long, without a break, before it signs"),
        retireAfter: duration
          .default('7d')
          .describe('a replaced key is revoked this long after it retired, never while mail it signed is queued; must exceed `signing.expireAfter`'),
        removeAfter: duration.default('30d').describe('a revoked key is removed (record withdrawn, file deleted) this long after its revocation'),
        stuckAfter: duration.default('7d').describe('a new key DNS has not served for this long, or a record that vanished, is reported'),
        notify: z
          .email('must be a mail address such as postmaster@example.com')
          .optional()
          .describe(
            'who is told when a step needs a person: a signed mail with the records to publish or delete, queued like a bounce in queue mode (sent straight to the upstream in sync mode)',
          ),
        revealPrivateKeys: z
          .string()
          .min(1)
          .optional()
          .describe('directory where the private keys of revoked keys are written (mode 0644) for publication; unset: never'),
      })
      .prefault({})
      .describe('unattended key rotation: when to start one, and how long each step waits'),

    reports: z
      .strictObject({
        keepDays: z
          .number()
          .int()
          .min(1)
          .default(180)
          .describe('days a report is kept after the end of the period it covers; older ones are removed at each import'),
        windowDays: z
          .number()
          .int()
          .min(1)
          .default(14)
          .describe(
            'days of reports the status page, `dkim-relay status` and the dkim_relay_dmarc_reported_* gauges sum up (reports whose period ended in them)',
          ),
        maxBytes: z
          .number()
          .int()
          .min(1024)
          .default(20 * 1024 * 1024)
          .describe('the most octets one report may take: as received, and again as inflated from gzip or zip'),
        imap: z
          .strictObject({
            host: z.string().min(1).describe('IMAP server of the mailbox the rua= address delivers to'),
            port: z.number().int().min(1).max(65535).optional().describe('default 993 with tls implicit, else 143'),
            tls: z
              .enum(['implicit', 'starttls', 'none'])
              .default('implicit')
              .describe('implicit: TLS from the start (port 993); starttls: upgraded before login; none: only to a loopback address'),
            user: z.string().min(1).describe('IMAP login name'),
            passwordFile: z.string().min(1).describe('file holding the IMAP password (one line), mode 0600 or stricter'),
            folder: z.string().min(1).default('INBOX').describe('folder the reports arrive in'),
            doneFolder: z.string().min(1).optional().describe('folder processed messages are moved to; unset: they are flagged \\Seen and stay'),
            intervalSeconds: z
              .number()
              .int()
              .min(1)
              .default(300)
              .describe(
                'seconds between two looks at the folder when the server offers no IDLE (with IDLE reports are read as they arrive); after a failure the relay connects again sooner, from 5 s doubling up to this',
              ),
          })
          .superRefine((imap, ctx) => {
            // A password in clear text is only ever sent to this machine.
            if (imap.tls === 'none' && !(isIP(imap.host) ? isLoopback(imap.host) : imap.host === 'localhost')) {
              ctx.addIssue({
                code: 'custom',
                path: ['tls'],
                message: `none sends the password in clear text, and ${imap.host} is not a loopback address`,
                params: { hint: 'use tls: implicit or starttls' },
              });
            }
          })
          .optional()
          .describe('a mailbox polled for reports by the running relay; unset: only `dkim-relay reports import`'),
      })
      .prefault({})
      .describe("DMARC aggregate reports (RFC 7489 §7.2), read back into the key store's database to show what receivers saw"),

    demo: z
      .strictObject({
        domain: z.string().superRefine(rules.domainName).describe('with an empty key store, `serve` creates and activates a key for this domain'),
      })
      .optional()
      .describe('demo mode; the embedded default, used when there is no configuration file, sets `demo.domain: example.com`'),
  })
  .superRefine(retirementOutlastsSignatures)
  .superRefine(signaturesOutlastQueue);

export type Config = z.infer<typeof configSchema>;
export type UpstreamConfig = Config['delivery']['upstream'];
export type SigningConfig = Config['signing'];
export type RotationConfig = Config['rotation'];
