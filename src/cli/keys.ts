// `keys …`: generate, list, publish, import, export and step keys through their lifecycle.
import { readFileSync, writeFileSync } from 'node:fs';
import type { Argv } from 'yargs';
import type { Config } from '../config/schema.ts';
import { delegatedCnames, delegationFor, formatCnames, type CnameFormat } from '../dns/delegation.ts';
import { checkPublished } from '../dns/published-key.ts';
import { DnsLookupFailed, parseNameserverOption } from '../dns/resolver.ts';
import { UserError } from '../common/errors.ts';
import { publicPem, RSA_SIZES, type Algorithm } from '../keys/key-material.ts';
import { published, sameChain } from '../keys/lifecycle.ts';
import { normalizeClientName, normalizeDomain, recordName } from '../common/names.ts';
import { chainKey, chainName } from '../keys/store-rules.ts';
import { txtRecord, zoneLines } from '../keys/record.ts';
import type { StoredKey } from '../keys/store.ts';
import type { KeyStore } from '../keys/key-store.ts';
import { duration, when } from '../rotation/plan.ts';
import { policyFor } from '../rotation/policy.ts';
import { keyRecord } from '../rotation/publication.ts';
import { fleetCommand, migrateCommand, rewrapCommand } from './keys-fleet.ts';
import { CheckFailed, print, printJson, table, withStore, type GlobalArgs } from './context.ts';

type Args = GlobalArgs & {
  domain?: string;
  client?: string;
  /** `keys rotate` takes several. */
  domains?: string[];
  all?: boolean;
  selector?: string;
  algorithm?: Algorithm;
  bits?: number;
  activate?: boolean;
  format?: 'zone' | 'json' | 'value' | 'cname';
  as?: CnameFormat;
  file?: string;
  private?: boolean;
  out?: string;
  force?: boolean;
  nameserver?: string;
  inToken?: boolean;
  toToken?: boolean;
  removeFile?: boolean;
};

const DOMAIN = { type: 'string', describe: 'the signing domain (d=), e.g. example.com' } as const;
const SELECTOR = { type: 'string', describe: 'the selector (s=)' } as const;
const CLIENT = { type: 'string', describe: "a client's own key chain (clients[].name with keys: own) instead of the domain's" } as const;

export function keysCommand(yargs: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return yargs
    .command<Args>(
      'generate',
      'create a new key (pending unless --activate) and print its DNS record',
      (y) =>
        y
          .option('domain', { ...DOMAIN, demandOption: true })
          .option('client', CLIENT)
          .option('selector', { ...SELECTOR, describe: 'default: s<year><month><letter> (with --client: NAME-<year><month><letter>), unique per domain' })
          .option('algorithm', { choices: ['rsa', 'ed25519'] as const, default: 'rsa' as const })
          .option('bits', { type: 'number', describe: `RSA modulus size: ${RSA_SIZES.join(', ')} (default 2048)` })
          .option('activate', { type: 'boolean', default: false, describe: 'sign with it at once (only while its chain has no active key of this algorithm)' })
          .option('in-token', {
            type: 'boolean',
            describe: 'generate it inside the PKCS#11 token of keys.pkcs11, which it never leaves (default: keys.pkcs11.newKeys)',
          })
          .example('$0 keys generate --domain example.com', 'RSA-2048, pending until activated')
          .example('$0 keys generate --domain example.com --algorithm ed25519 --activate', 'dual signing: add an Ed25519 key')
          .example('$0 keys generate --domain example.com --client scanner', "a key of the scanner's own chain, selector scanner-<year><month><letter>"),
      (args) =>
        withStore(
          args,
          async (store, { config }) => {
            if (args.algorithm === 'ed25519' && args.bits !== undefined) {
              throw new UserError('--bits applies to RSA keys only', 'Ed25519 keys are always 256 bits: leave out --bits');
            }
            const key = await store.generate({
              domain: args.domain!,
              client: ownChainClient(config, args.client, args.domain!),
              selector: args.selector,
              algorithm: args.algorithm!,
              bits: args.bits ?? 2048,
              activate: args.activate,
              inToken: args.inToken,
            });
            announce(key, args);
          },
          { create: true },
        ),
    )
    .command<Args>(
      'list',
      "every key: domain, selector, algorithm, bits, state, dates, fingerprint, chain (the domain's, or a client's)",
      (y) => y.option('domain', DOMAIN).option('client', { ...CLIENT, describe: "only this client's chain" }),
      (args) =>
        withStore(args, (store) => {
          const keys = inChain(store.list(args.domain), args.client);
          if (args.json) return printJson(keys.map(({ file: _file, ...k }) => k));
          if (keys.length === 0 && (args.domain !== undefined || args.client !== undefined)) return print(noKeysFor(args.domain, args.client));
          if (keys.length === 0) return print('no keys yet: dkim-relay keys generate --domain example.com');
          print(
            table(
              // The chain comes last: scripts reading the earlier columns by position read them as before.
              ['DOMAIN', 'SELECTOR', 'ALGORITHM', 'BITS', 'STATE', 'WHERE', 'CREATED', 'ACTIVATED', 'RETIRED', 'FINGERPRINT', 'CHAIN'],
              keys.map((k) => [
                k.domain,
                k.selector,
                k.algorithm,
                String(k.bits),
                k.state,
                k.material,
                day(k.createdAt),
                day(k.activatedAt),
                day(k.retiredAt),
                k.fingerprint,
                chainLabel(k.client),
              ]),
            ),
          );
        }),
    )
    .command<Args>(
      'dns',
      'the TXT records to publish now (pending, active, retiring; revoked as empty p=)',
      (y) =>
        y
          .option('domain', DOMAIN)
          .option('client', { ...CLIENT, describe: "only the records of this client's chain" })
          .option('format', {
            choices: ['zone', 'json', 'value', 'cname'] as const,
            default: 'zone' as const,
            describe: 'zone: zone-file lines; value: one unsplit string; json: for provider APIs; cname: the CNAMEs of delegated selectors',
          })
          .option('as', { choices: ['zone', 'value', 'json'] as const, describe: 'with --format cname: zone-file lines (default), name and target, or JSON' })
          .example('$0 keys dns --domain example.com', 'zone-file lines, strings of at most 255 octets')
          .example('$0 keys dns --format value', 'one string per record, for web panels that split by themselves')
          .example('$0 keys dns --format cname --domain example.com', 'the CNAMEs the owner of example.com publishes once (dns.delegation)'),
      (args) =>
        withStore(args, (store, { config }) => {
          if (args.format === 'cname') return printCnames(store, config, args);
          if (args.as !== undefined) throw new UserError('--as applies to --format cname only', 'leave out --as, or add --format cname');
          // In delegated mode a record lives at the CNAME's target, in the relay's zone.
          const records = inChain(store.list(args.domain), args.client)
            .filter((k) => published(k.state))
            .map((k) => keyRecord(k, delegationFor(config.dns.delegation, k.domain)));
          // Nothing to publish for a domain named on purpose is most likely a typo: a failed check.
          if (records.length === 0 && (args.domain !== undefined || args.client !== undefined)) throw new CheckFailed(noKeysFor(args.domain, args.client));
          if (args.json || args.format === 'json') return printJson(records);
          if (records.length === 0) return print('; no keys yet: dkim-relay keys generate --domain example.com');
          if (args.format === 'value') return print(records.map((r) => `${r.name}\t${r.value}`).join('\n'));
          print(records.map((r) => `; ${r.state}\n${zoneLines(r)}`).join('\n'));
        }),
    )
    .command<Args>(
      'import',
      'bring an existing private key (PEM, PKCS#1 or PKCS#8) into the store, or with --to-token into the PKCS#11 token',
      (y) =>
        y
          .option('domain', { ...DOMAIN, demandOption: true })
          .option('selector', { ...SELECTOR, demandOption: true })
          .option('client', CLIENT)
          .option('file', { type: 'string', describe: 'PEM file holding the private key (required unless --to-token moves a key of the store)' })
          .option('activate', { type: 'boolean', default: false, describe: 'sign with it at once' })
          .option('to-token', {
            type: 'boolean',
            default: false,
            describe:
              "into the PKCS#11 token of keys.pkcs11, non-extractable; without --file: the store's key of that selector moves there, its DNS record unchanged",
          })
          .option('remove-file', {
            type: 'boolean',
            default: false,
            describe: "with --to-token and no --file: delete the key's PEM file once the token holds it",
          })
          .example('$0 keys import --domain example.com --selector s1 --to-token --remove-file', 'move an existing key into the HSM'),
      (args) =>
        withStore(
          args,
          async (store, { config }) => {
            if (args.removeFile && (!args.toToken || args.file !== undefined)) {
              throw new UserError('--remove-file applies when --to-token moves a key of the store', 'leave out --file, or --remove-file');
            }
            if (args.file === undefined && !args.toToken) throw new UserError('keys import needs --file', 'give the PEM file: --file key.pem');
            if (args.file === undefined) {
              if (!store.moveToToken)
                throw new UserError(
                  'a key of the shared key store cannot be moved into the token',
                  'generate its successor there instead: set keys.pkcs11.newKeys: true, then run keys rotate',
                );
              const moved = await store.moveToToken(args.domain!, args.selector!, { removeFile: args.removeFile ?? false });
              if (args.json) return printJson(withoutFile(moved));
              print(`${moved.domain} ${moved.selector}: its private key is now in the PKCS#11 token; its DNS record is unchanged`);
              if (!args.removeFile) print('The PEM file is still in keys.dir: delete it once the token is backed up (or run again with --remove-file)');
              return;
            }
            let pem: string;
            try {
              pem = readFileSync(args.file!, 'utf8');
            } catch {
              throw new UserError(`cannot read ${args.file}`, 'check the --file path');
            }
            announce(
              await store.import({
                domain: args.domain!,
                client: ownChainClient(config, args.client, args.domain!),
                selector: args.selector,
                pem,
                source: args.file!,
                activate: args.activate,
                inToken: args.toToken,
              }),
              args,
            );
          },
          { create: true },
        ),
    )
    .command<Args>(
      'export',
      'print a key: the public key (PEM) by default, the private key only with --private',
      (y) =>
        y
          .option('domain', { ...DOMAIN, demandOption: true })
          .option('selector', { ...SELECTOR, demandOption: true })
          .option('private', { type: 'boolean', default: false, describe: 'export the private key (PKCS#8 PEM)' })
          .option('out', { type: 'string', describe: 'write to this file (created 0600) instead of stdout' }),
      (args) =>
        withStore(args, (store) => {
          if (args.json) {
            throw new UserError(
              'keys export prints PEM, not JSON',
              'leave out --json; `dkim-relay keys list --json` gives the public key (publicData) and its metadata',
            );
          }
          const key = store.get(args.domain!, args.selector!);
          const pem = args.private ? store.privatePem(key) : publicPem(key.algorithm, key.publicData);
          if (args.out) writeNewFile(args.out, pem);
          else process.stdout.write(pem);
        }),
    )
    .command<Args>(
      'activate',
      "start signing with a key once DNS serves its record; the domain's active key of the same algorithm retires",
      (y) =>
        y
          .option('domain', { ...DOMAIN, demandOption: true })
          .option('selector', { ...SELECTOR, demandOption: true })
          .option('force', {
            type: 'boolean',
            default: false,
            describe: 'activate even though DNS does not serve the record (mail will fail DKIM until it does)',
          })
          .option('nameserver', { type: 'string', describe: 'ask this resolver (IP or IP:PORT) instead of the system one' }),
      (args) =>
        withStore(args, async (store) => {
          if (args.nameserver !== undefined) parseNameserverOption(args.nameserver);
          const key = store.get(args.domain!, args.selector!);
          const replaced = store.list(key.domain).filter((k) => k.state === 'active' && k.algorithm === key.algorithm && k.id !== key.id && sameChain(k, key));
          // An active key needs no check, and a revoked one is refused by the store below.
          const needsCheck = key.state === 'pending' || key.state === 'retiring';
          let dnsCheck: 'match' | 'skipped' | 'not needed' = 'not needed';
          if (needsCheck && args.force) {
            dnsCheck = 'skipped';
            warn(
              `DNS check skipped (--force): receivers fail DKIM on mail signed with ${key.selector} until ${recordName(key.selector, key.domain)} serves its record`,
            );
          } else if (needsCheck) {
            await requirePublished(key, args.nameserver);
            dnsCheck = 'match';
          }
          for (const old of needsCheck ? replaced : []) {
            if (key.algorithm === 'rsa' && key.bits < old.bits) {
              warn(
                `${key.selector} (rsa ${key.bits} bits) replaces ${old.selector} (rsa ${old.bits} bits), a stronger key; generate a key of ${old.bits} bits or more and activate that instead`,
              );
            }
          }
          const activated = await store.activate(args.domain!, args.selector!);
          const retired = replaced.map((k) => store.get(k.domain, k.selector)).filter((k) => k.state === 'retiring');
          if (args.json) return printJson({ ...withoutFile(activated), record: txtRecord(activated), dnsCheck, retired: retired.map(withoutFile) });
          // Checked just now: nothing is left to publish.
          announce(activated, args, dnsCheck === 'match');
          for (const k of retired) print(`${k.selector} is now retiring: it no longer signs; keep its record published for mail in flight, then revoke it`);
        }),
    )
    .command<Args>(
      'retire',
      'stop signing with a key; its record stays published for mail in flight',
      (y) => y.option('domain', { ...DOMAIN, demandOption: true }).option('selector', { ...SELECTOR, demandOption: true }),
      (args) =>
        withStore(args, async (store, { config }) => {
          const wasRetiring = store.get(args.domain!, args.selector!).state === 'retiring';
          const key = await store.retire(args.domain!, args.selector!);
          if (wasRetiring) warn(`${key.selector} of ${key.domain} was already retiring (since ${key.retiredAt ?? '?'}): nothing changed`);
          announce(key, args);
          if (key.client) warnAboutClientChain(store, key.domain, key.client, config);
          else warnAboutWhatSignsNow(store, key.domain, config);
        }),
    )
    .command<Args>(
      'revoke',
      "revoke a key that no longer signs: its record is then published with an empty p=; with --client and no --selector, every key of that client's chain (its active key retires first)",
      (y) =>
        y
          .option('domain', { ...DOMAIN, demandOption: true })
          .option('selector', { ...SELECTOR, describe: 'the selector (s=); required unless --client names a whole chain' })
          .option('client', { ...CLIENT, describe: "revoke every key of this client's chain: it signs no more, every other source signs on" })
          .example('$0 keys revoke --domain example.com --client scanner', "a compromised scanner: its chain's keys revoked at once"),
      (args) =>
        withStore(args, async (store, { config }) => {
          if (args.selector !== undefined) {
            const key = store.get(args.domain!, args.selector);
            if (args.client !== undefined && key.client !== normalizeClientName(args.client)) {
              throw new UserError(
                `key ${key.selector} for ${key.domain} is in ${chainLabel(key.client)}'s chain, not client ${args.client}'s`,
                'check --selector and --client',
              );
            }
            return announce(await store.revoke(key.domain, key.selector), args);
          }
          if (args.client === undefined)
            throw new UserError('keys revoke needs --selector, or --client for a whole chain', 'give --selector S (see `dkim-relay keys list`)');
          const revoked = await revokeChain(store, normalizeDomain(args.domain!), normalizeClientName(args.client));
          if (args.json) return printJson(revoked.map((k) => ({ ...withoutFile(k), record: txtRecord(k) })));
          for (const key of revoked) announce(key, args);
          warnAboutClientChain(store, normalizeDomain(args.domain!), normalizeClientName(args.client), config);
        }),
    )
    .command<Args>(
      'rotate',
      'start a rotation: a new pending key with a fresh selector, which `serve` activates once DNS has served it',
      (y) =>
        y
          .option('domain', { ...DOMAIN, type: 'string', array: true, describe: 'the signing domain (d=); repeat for several' })
          .option('all', { type: 'boolean', default: false, describe: "every domain that has an active key, and every client's chain that has one" })
          .option('client', { ...CLIENT, describe: "rotate this client's chain (with --all: its chain in every domain)" })
          .option('algorithm', {
            choices: ['rsa', 'ed25519'] as const,
            describe: 'rotate only this algorithm, or switch to it (default: each active key, same algorithm)',
          })
          .option('bits', { type: 'number', describe: `RSA modulus size: ${RSA_SIZES.join(', ')} (default: as the active key)` })
          .example('$0 keys rotate --domain example.com', 'the next key, same algorithm and size as the active one')
          .example('$0 keys rotate --all', 'every signing domain and client chain')
          .example('$0 keys rotate --domain example.com --client scanner', "the scanner's next key, scanner-<year><month><letter>"),
      (args) =>
        withStore(args, async (store, { config }) => {
          const named = (args.domain as unknown as string[] | undefined) ?? [];
          if (named.length > 0 === args.all) {
            throw new UserError(
              args.all ? '--all and --domain exclude each other' : 'name the domains to rotate',
              'give --domain D (repeat for several) or --all',
            );
          }
          if (args.algorithm === 'ed25519' && args.bits !== undefined) {
            throw new UserError('--bits applies to RSA keys only', 'Ed25519 keys are always 256 bits: leave out --bits');
          }
          const client = args.client === undefined ? undefined : normalizeClientName(args.client);
          const chains = args.all
            ? [
                ...new Map(
                  inChain(store.list(), client)
                    .filter((k) => k.state === 'active')
                    .map((k) => [chainKey(k.domain, k.client), { domain: k.domain, client: k.client ?? undefined }]),
                ).values(),
              ]
            : named.map((d) => ({ domain: normalizeDomain(d), client }));
          if (chains.length === 0)
            throw new UserError('no domain has an active key to rotate', 'generate and activate a key first: dkim-relay keys generate --domain example.com');
          const made: { key: StoredKey; replaces: StoredKey }[] = [];
          for (const chain of chains) {
            for (const { replaces, algorithm, bits } of rotationsFor(store, chain, args, !args.all)) {
              const key = await store.generate({ ...chain, algorithm, bits, step: { by: 'cli', why: `keys rotate: replaces ${replaces.selector}` } });
              made.push({ key, replaces });
            }
          }
          if (args.json) return printJson(made.map(({ key, replaces }) => ({ ...withoutFile(key), record: txtRecord(key), replaces: replaces.selector })));
          if (made.length === 0) return print('nothing rotated: each domain already has a rotation under way');
          for (const { key, replaces } of made) {
            announce(key, args);
            const publishFor = duration(policyFor(config.rotation, key.domain).publishFor);
            print(
              `${key.selector} replaces ${replaces.selector}. Once every DNS server asked has served this record for ${publishFor} (rotation.publishFor), the scheduler inside \`dkim-relay serve\` activates it and ${replaces.selector} retires.`,
            );
          }
        }),
    )
    .command<Args>(
      'remove',
      'remove a revoked key, or a pending one that never signed: delete its private key file and withdraw its DNS record; its history stays',
      (y) =>
        y
          .option('domain', { ...DOMAIN, demandOption: true })
          .option('selector', { ...SELECTOR, demandOption: true })
          .option('force', { type: 'boolean', default: false, describe: 'remove it before rotation.removeAfter has passed since its revocation' }),
      (args) =>
        withStore(args, async (store, { config }) => {
          const key = store.get(args.domain!, args.selector!);
          const removeAfter = policyFor(config.rotation, key.domain).removeAfter;
          if (key.state === 'revoked' && !args.force) {
            const due = Date.parse(key.revokedAt!) + removeAfter;
            if (due > Date.now()) {
              throw new UserError(
                `key ${key.selector} for ${key.domain} was revoked ${when(key.revokedAt!)}; it is kept for ${duration(removeAfter)} (rotation.removeAfter), until ${when(due)}`,
                'wait until then (`serve` removes it by itself), or add --force',
              );
            }
          }
          const withdraw = txtRecord(key); // as DNS serves it now (revoked: the record with an empty p=)
          const removed = await store.remove(key.domain, key.selector);
          if (args.json) return printJson({ ...withoutFile(removed), withdraw });
          const gone = removed.material === 'pkcs11' ? 'its key objects in the token are destroyed' : 'its private key file is deleted';
          if (key.state === 'pending') {
            print(`${removed.domain} ${removed.selector}: removed (it never signed); ${gone}`);
            print(`If you published its record, withdraw it:\n${zoneLines(withdraw)}`);
          } else {
            print(`${removed.domain} ${removed.selector}: removed; ${gone}`);
            print(`Withdraw this record:\n${zoneLines(withdraw)}`);
          }
        }),
    )
    .command<Args>(
      'history',
      "every change of state of every key: when, from, to, by whom (cli, scheduler, dns), why, and the key's chain",
      (y) => y.option('domain', DOMAIN).option('client', { ...CLIENT, describe: "only the events of this client's chain" }),
      (args) =>
        withStore(args, (store) => {
          // Events name their key; the key's row says which chain it is in.
          const chainOf = new Map(store.list(args.domain).map((k) => [k.id, k.client ?? null]));
          const client = args.client === undefined ? undefined : normalizeClientName(args.client);
          const events = store
            .history(args.domain)
            .map((e) => ({ ...e, client: chainOf.get(e.keyId) ?? null }))
            .filter((e) => client === undefined || e.client === client);
          if (args.json) return printJson(events);
          if (events.length === 0 && client !== undefined)
            return print(`no key events for ${args.domain === undefined ? `client ${client}` : chainName(normalizeDomain(args.domain), client)}`);
          if (events.length === 0) return print(args.domain ? `no key events for ${normalizeDomain(args.domain)}` : 'no key events yet');
          print(
            table(
              // The chain comes last, as in `keys list`: scripts reading the earlier columns by position read them as before.
              ['AT', 'DOMAIN', 'SELECTOR', 'FROM', 'TO', 'BY', 'WHY', 'CHAIN'],
              events.map((e) => [e.at.slice(0, 19).replace('T', ' '), e.domain, e.selector, e.from ?? '-', e.to, e.by, e.why, chainLabel(e.client)]),
            ),
          );
        }),
    )
    .command(migrateCommand)
    .command(rewrapCommand)
    .command(fleetCommand)
    .demandCommand(1, 'name a keys command: generate, list, dns, import, export, activate, retire, revoke, rotate, remove, history, migrate, rewrap or fleet');
}

/**
 * The keys `keys rotate` makes for a domain: one per active key (or only
 * --algorithm's), same algorithm and size unless told otherwise. A rotation
 * already under way (a pending key newer than the active one) is refused
 * for a domain named on purpose, and skipped with a note under --all.
 */
function rotationsFor(
  store: KeyStore,
  { domain, client }: { domain: string; client: string | undefined },
  args: Args,
  strict: boolean,
): { replaces: StoredKey; algorithm: Algorithm; bits: number }[] {
  const keys = store.list(domain).filter((k) => (k.client ?? undefined) === client);
  const active = keys.filter((k) => k.state === 'active');
  const name = chainName(domain, client);
  if (active.length === 0) {
    const generate = `dkim-relay keys generate --domain ${domain}${client ? ` --client ${client}` : ''}`;
    throw new UserError(`${name} has no active key to rotate`, `generate one and activate it first: ${generate}`);
  }
  const wanted = args.algorithm ? [active.find((k) => k.algorithm === args.algorithm) ?? active[0]!] : active;
  const out: { replaces: StoredKey; algorithm: Algorithm; bits: number }[] = [];
  for (const old of wanted) {
    const algorithm = args.algorithm ?? old.algorithm;
    const underway = keys.find((k) => k.state === 'pending' && k.algorithm === algorithm && k.createdAt >= old.createdAt && k.id !== old.id);
    if (underway) {
      const line = `${name}: a rotation is already under way: ${underway.selector} (${algorithm}) is pending`;
      if (strict)
        throw new UserError(
          line,
          `publish its record (dkim-relay keys dns --domain ${domain}); \`serve\` activates it once DNS serves it, or revoke it to start over`,
        );
      warn(`${line}; skipped`);
      continue;
    }
    const bits = algorithm === 'ed25519' ? 256 : (args.bits ?? (old.algorithm === 'rsa' ? old.bits : 2048));
    out.push({ replaces: old, algorithm, bits });
  }
  return out;
}

/**
 * `keys dns --format cname`: the CNAMEs each delegated domain's owner
 * publishes once, for the named domain or every delegated domain the store
 * has keys for (or dns.delegation.domains lists).
 */
function printCnames(store: KeyStore, config: Config, args: Args): void {
  const settings = config.dns.delegation;
  if (!settings)
    throw new UserError(
      '--format cname needs delegated selectors, and dns.delegation is not set',
      'set dns.delegation.zone (see docs/dns-and-publishing.md, "Delegated selectors"), or use --format zone',
    );
  let domains: string[];
  if (args.domain !== undefined) {
    const domain = normalizeDomain(args.domain);
    if (!delegationFor(settings, domain))
      throw new UserError(
        `${domain} does not use delegated selectors (it is not in dns.delegation.domains)`,
        'add it to dns.delegation.domains, or use --format zone',
      );
    domains = [domain];
  } else {
    domains = [
      ...new Set([
        ...(settings.domains ?? []),
        ...store
          .list()
          .filter((k) => k.state !== 'removed')
          .map((k) => k.domain),
      ]),
    ]
      .filter((d) => delegationFor(settings, d))
      .sort();
  }
  const records = domains.flatMap((d) => delegatedCnames(d, delegationFor(settings, d)!));
  const format = args.json ? 'json' : (args.as ?? 'zone');
  if (records.length === 0 && format !== 'json') return print('; no domain uses delegated selectors yet: dkim-relay keys generate --domain example.com');
  print(formatCnames(records, format));
}

/**
 * The client named by --client, checked against the configuration: a key
 * made for a name no clients[] entry signs with would never sign.
 */
function ownChainClient(config: Config, client: string | undefined, domain: string): string | undefined {
  if (client === undefined) return undefined;
  const name = normalizeClientName(client);
  // Delegated selectors are the CNAMEs the domain's owner published once: a client's selectors have none.
  if (delegationFor(config.dns.delegation, normalizeDomain(domain))) {
    throw new UserError(
      `${normalizeDomain(domain)} uses delegated selectors, which serve the domain's own keys only`,
      'leave out --client, or take the domain out of dns.delegation.domains',
    );
  }
  if (!config.clients.some((c) => c.name === name && c.keys === 'own')) {
    throw new UserError(
      `no client named ${name} signs with keys of its own`,
      `add name: ${name} and keys: own to its clients[] entry in the configuration, or leave out --client for the domain's keys`,
    );
  }
  return name;
}

/** The keys of one chain when --client names it; all otherwise. */
function inChain(keys: StoredKey[], client: string | undefined): StoredKey[] {
  if (client === undefined) return keys;
  const name = normalizeClientName(client);
  return keys.filter((k) => k.client === name);
}

/** How `keys list` shows a key's chain: "domain", or the client's name. */
function chainLabel(client: string | null): string {
  return client ? `client ${client}` : 'domain';
}

/**
 * Every key of a client's chain in `domain` that is not revoked yet, revoked:
 * an active key retires first (the lifecycle never revokes a signing key in
 * one step). Returns the keys as they are afterwards.
 */
async function revokeChain(store: KeyStore, domain: string, client: string): Promise<StoredKey[]> {
  const keys = store.list(domain).filter((k) => k.client === client && (k.state === 'pending' || k.state === 'active' || k.state === 'retiring'));
  if (keys.length === 0) throw new UserError(`${chainName(domain, client)} has no key left to revoke`, `see \`dkim-relay keys list --client ${client}\``);
  const revoked: StoredKey[] = [];
  for (const key of keys) {
    const why = `keys revoke --client ${client}`;
    if (key.state === 'active') await store.retire(domain, key.selector, { why });
    revoked.push(await store.revoke(domain, key.selector, { why }));
  }
  return revoked;
}

/** After a client's chain lost its keys: what its mail gets now. */
function warnAboutClientChain(store: KeyStore, domain: string, client: string, config: Config): void {
  if (store.activeKeys(domain, client).length > 0) return;
  const entry = config.clients.find((c) => c.name === client && c.keys === 'own');
  if (!entry) return;
  const outcome =
    entry.whenNoKey === 'domain'
      ? `its mail from ${domain} is now signed with the domain's keys (whenNoKey: domain)`
      : `its mail from ${domain} now gets signing.unknownDomain's rule (${config.signing.unknownDomain})`;
  warn(
    `client ${client} has no active key left for ${domain}: ${outcome}; generate a new key for it: dkim-relay keys generate --domain ${domain} --client ${client}`,
  );
}

/** After a change: the key's state and the record to publish (or that DNS serves it, when just checked). */
function announce(key: StoredKey, args: GlobalArgs, served = false): void {
  const record = txtRecord(key);
  if (key.algorithm === 'rsa' && key.bits > 2048 && (key.state === 'pending' || key.state === 'active')) {
    warn('records of keys over 2048 bits may not fit a UDP DNS answer; some receivers then fail to fetch them');
  }
  if (args.json) return printJson({ ...withoutFile(key), record });
  print(`${chainName(key.domain, key.client)} ${key.selector}: ${key.algorithm} ${key.bits} bits, ${key.state}, ${key.fingerprint}`);
  const heading =
    key.state === 'retiring'
      ? 'Keep this record published (mail the key signed is still being verified):'
      : key.state === 'revoked'
        ? 'Publish this record in place of the old one (its empty p= says the key is revoked):'
        : 'Publish this record:';
  print(served ? `DNS serves its record ${record.name}` : `${heading}\n${zoneLines(record)}`);
}

/** Warnings go to stderr, so stdout stays the result (and valid JSON under --json). */
function warn(text: string): void {
  process.stderr.write(`warning: ${text}\n`);
}

function noKeysFor(domain: string | undefined, client?: string): string {
  const ascii = domain === undefined ? 'example.com' : normalizeDomain(domain);
  const chain = client === undefined ? '' : ` --client ${normalizeClientName(client)}`;
  const what = domain === undefined ? `client ${normalizeClientName(client!)}` : chainName(ascii, client && normalizeClientName(client));
  return `no keys for ${what} — generate one: dkim-relay keys generate --domain ${ascii}${chain}`;
}

/** Refuses unless DNS serves exactly this key; DNS that does not answer is a failed check (exit 1). */
async function requirePublished(key: StoredKey, nameserver: string | undefined): Promise<void> {
  let check;
  try {
    check = await checkPublished(key, nameserver);
  } catch (err) {
    if (err instanceof DnsLookupFailed) {
      throw new CheckFailed(`not activated: ${err.message} — retry when DNS answers, ask another resolver with --nameserver, or skip the check with --force`);
    }
    throw err;
  }
  if (check.state !== 'match') {
    throw new UserError(`not activated: ${check.detail}`, 'publish the record from `dkim-relay keys dns`, wait for it to appear, then retry (or --force)');
  }
}

/** After a retirement: a domain left without an active key, or with Ed25519 alone, no longer signs as before. */
function warnAboutWhatSignsNow(store: KeyStore, domain: string, config: Config): void {
  const active = store.list(domain).filter((k) => k.state === 'active' && k.client === null);
  if (active.length > 0) {
    if (active.every((k) => k.algorithm === 'ed25519')) {
      warn(`${domain} now signs with Ed25519 only; receivers that do not know Ed25519 see its mail as unsigned — activate an RSA key`);
    }
    return;
  }
  for (let parent = domain.slice(domain.indexOf('.') + 1); parent.includes('.'); parent = parent.slice(parent.indexOf('.') + 1)) {
    if (store.list(parent).some((k) => k.state === 'active' && k.client === null)) {
      return warn(`${domain} has no active key left: its mail is now signed by ${parent}`);
    }
  }
  const what = {
    forward: 'its mail now leaves unsigned',
    reject: 'its mail is now refused (550)',
    tempfail: 'its mail is now deferred (451) until a key is active',
  }[config.signing.unknownDomain];
  warn(`${domain} has no active key left: ${what} (signing.unknownDomain: ${config.signing.unknownDomain}) — activate another key to sign it`);
}

function withoutFile({ file: _file, ...key }: StoredKey) {
  return key;
}

/** Creates `file` 0600; never overwrites. */
function writeNewFile(file: string, text: string): void {
  try {
    writeFileSync(file, text, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new UserError(`${file} already exists`, 'choose another --out, or remove the file first');
    throw new UserError(`cannot write ${file}: ${(err as Error).message}`, 'check that the folder exists and is writable');
  }
}

function day(iso: string | null): string {
  return iso ? iso.slice(0, 10) : '-';
}
