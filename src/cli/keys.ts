// `keys …`: generate, list, publish, import, export and step keys through their lifecycle.
import { readFileSync, writeFileSync } from 'node:fs';
import type { Argv } from 'yargs';
import { checkPublished } from '../dns/published-key.ts';
import { UserError } from '../errors.ts';
import { publicPem, RSA_SIZES, type Algorithm } from '../keys/key-material.ts';
import { txtRecord, zoneLines } from '../keys/record.ts';
import type { StoredKey } from '../keys/store.ts';
import { print, printJson, table, withStore, type GlobalArgs } from './context.ts';

type Args = GlobalArgs & {
  domain?: string;
  selector?: string;
  algorithm?: Algorithm;
  bits?: number;
  activate?: boolean;
  format?: 'zone' | 'json' | 'value';
  file?: string;
  private?: boolean;
  out?: string;
  force?: boolean;
  nameserver?: string;
};

const DOMAIN = { type: 'string', describe: 'the signing domain (d=), e.g. example.com' } as const;
const SELECTOR = { type: 'string', describe: 'the selector (s=)' } as const;

export function keysCommand(yargs: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return yargs
    .command<Args>(
      'generate',
      'create a new key (pending unless --activate) and print its DNS record',
      (y) =>
        y
          .option('domain', { ...DOMAIN, demandOption: true })
          .option('selector', { ...SELECTOR, describe: 'default: s<year><month><letter>, unique per domain' })
          .option('algorithm', { choices: ['rsa', 'ed25519'] as const, default: 'rsa' as const })
          .option('bits', { type: 'number', default: 2048, describe: `RSA modulus size: ${RSA_SIZES.join(', ')}` })
          .option('activate', { type: 'boolean', default: false, describe: 'sign with it at once (only while the domain has no active key of this algorithm)' })
          .example('$0 keys generate --domain example.com', 'RSA-2048, pending until activated')
          .example('$0 keys generate --domain example.com --algorithm ed25519 --activate', 'dual signing: add an Ed25519 key'),
      (args) =>
        withStore(args, (store) => {
          const key = store.generate({ domain: args.domain!, selector: args.selector, algorithm: args.algorithm!, bits: args.bits, activate: args.activate });
          announce(key, args);
        }),
    )
    .command<Args>(
      'list',
      'every key: domain, selector, algorithm, bits, state, dates, fingerprint',
      (y) => y.option('domain', DOMAIN),
      (args) =>
        withStore(args, (store) => {
          const keys = store.list(args.domain);
          if (args.json) return printJson(keys.map(({ file: _file, ...k }) => k));
          if (keys.length === 0) return print('no keys yet: dkim-relay keys generate --domain example.com');
          print(table(
            ['DOMAIN', 'SELECTOR', 'ALGORITHM', 'BITS', 'STATE', 'CREATED', 'ACTIVATED', 'RETIRED', 'FINGERPRINT'],
            keys.map((k) => [k.domain, k.selector, k.algorithm, String(k.bits), k.state, day(k.createdAt), day(k.activatedAt), day(k.retiredAt), k.fingerprint]),
          ));
        }),
    )
    .command<Args>(
      'dns',
      'the TXT records to publish now (pending, active, retiring; revoked as empty p=)',
      (y) =>
        y
          .option('domain', DOMAIN)
          .option('format', { choices: ['zone', 'json', 'value'] as const, default: 'zone' as const, describe: 'zone: zone-file lines; value: one unsplit string; json: for provider APIs' })
          .example('$0 keys dns --domain example.com', 'zone-file lines, strings of at most 255 octets')
          .example('$0 keys dns --format value', 'one string per record, for web panels that split by themselves'),
      (args) =>
        withStore(args, (store) => {
          const records = store.list(args.domain).map((k) => txtRecord(k));
          if (args.json || args.format === 'json') return printJson(records);
          if (records.length === 0) return print('; no keys yet: dkim-relay keys generate --domain example.com');
          if (args.format === 'value') return print(records.map((r) => `${r.name}\t${r.value}`).join('\n'));
          print(records.map((r) => `; ${r.state}\n${zoneLines(r)}`).join('\n'));
        }),
    )
    .command<Args>(
      'import',
      'bring an existing private key (PEM, PKCS#1 or PKCS#8) into the store',
      (y) =>
        y
          .option('domain', { ...DOMAIN, demandOption: true })
          .option('selector', { ...SELECTOR, demandOption: true })
          .option('file', { type: 'string', demandOption: true, describe: 'PEM file holding the private key' })
          .option('activate', { type: 'boolean', default: false, describe: 'sign with it at once' }),
      (args) =>
        withStore(args, (store) => {
          let pem: string;
          try {
            pem = readFileSync(args.file!, 'utf8');
          } catch {
            throw new UserError(`cannot read ${args.file}`, 'check the --file path');
          }
          announce(store.import({ domain: args.domain!, selector: args.selector, pem, source: args.file!, activate: args.activate }), args);
        }),
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
          const key = store.get(args.domain!, args.selector!);
          const pem = args.private ? store.privatePem(key) : publicPem(key.algorithm, key.publicData);
          if (args.out) writeNewFile(args.out, pem);
          else process.stdout.write(pem);
        }),
    )
    .command<Args>(
      'activate',
      'start signing with a key once DNS serves its record; the domain\'s active key of the same algorithm retires',
      (y) =>
        y
          .option('domain', { ...DOMAIN, demandOption: true })
          .option('selector', { ...SELECTOR, demandOption: true })
          .option('force', { type: 'boolean', default: false, describe: 'activate even though DNS does not serve the record (mail will fail DKIM until it does)' })
          .option('nameserver', { type: 'string', describe: 'ask this resolver (IP or IP:PORT) instead of the system one' }),
      (args) =>
        withStore(args, async (store) => {
          const key = store.get(args.domain!, args.selector!);
          if (!args.force && key.state !== 'active') {
            const check = await checkPublished(key, args.nameserver);
            if (check.state !== 'match') {
              throw new UserError(`not activated: ${check.detail}`, 'publish the record from `dkim-relay keys dns`, wait for it to appear, then retry (or --force)');
            }
          }
          announce(store.activate(args.domain!, args.selector!), args);
        }),
    )
    .command<Args>(
      'retire',
      'stop signing with a key; its record stays published for mail in flight',
      (y) => y.option('domain', { ...DOMAIN, demandOption: true }).option('selector', { ...SELECTOR, demandOption: true }),
      (args) => withStore(args, (store) => announce(store.retire(args.domain!, args.selector!), args)),
    )
    .command<Args>(
      'revoke',
      'revoke a key that no longer signs: its record is then published with an empty p=',
      (y) => y.option('domain', { ...DOMAIN, demandOption: true }).option('selector', { ...SELECTOR, demandOption: true }),
      (args) => withStore(args, (store) => announce(store.revoke(args.domain!, args.selector!), args)),
    )
    .demandCommand(1, 'name a keys command: generate, list, dns, import, export, activate, retire or revoke');
}

/** After a change: the key's state and the record to publish. */
function announce(key: StoredKey, args: GlobalArgs): void {
  const record = txtRecord(key);
  if (args.json) return printJson({ ...withoutFile(key), record });
  print(`${key.domain} ${key.selector}: ${key.algorithm} ${key.bits} bits, ${key.state}, ${key.fingerprint}`);
  print(`Publish this record:\n${zoneLines(record)}`);
  if (key.algorithm === 'rsa' && key.bits > 2048) {
    print('Note: records of keys over 2048 bits may not fit a UDP DNS answer; some receivers then fail to fetch them.');
  }
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
