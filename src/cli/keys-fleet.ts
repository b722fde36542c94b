// `keys migrate`, `keys rewrap` and `keys fleet forget`: moving a relay's key
// store into the PostgreSQL store a fleet shares, changing the key-encryption
// key of it, and dropping a decommissioned relay from the fleet's listing.
import type { Argv, CommandModule } from 'yargs';
import { UserError } from '../common/errors.ts';
import { openPgStore } from '../keys/open-store.ts';
import { isPostgresUrl, redactUrl } from '../keys/pg-url.ts';
import type { PgKeyStore } from '../keys/pg-store.ts';
import type { KeyStore } from '../keys/key-store.ts';
import { fleetStatus } from '../observability/fleet-status.ts';
import { when } from '../rotation/plan.ts';
import { readEncryptionKey } from '../keys/sealing.ts';
import { COPIED_TABLES, copySqliteStore } from '../keys/store-copy.ts';
import { SqliteKeyStore } from '../keys/store.ts';
import { copyReports } from '../reports/report-copy.ts';
import { configFrom, print, printJson, withStore, type GlobalArgs } from './context.ts';

type MigrateArgs = GlobalArgs & { to: string; 'encryption-key-file'?: string; 'password-file'?: string };
type RewrapArgs = GlobalArgs & { 'new-key-file': string };
type ForgetArgs = GlobalArgs & { name: string; address?: string };

const TABLE_NAMES: Record<(typeof COPIED_TABLES)[number], string> = {
  keys: 'keys',
  events: 'events (history)',
  dns_observations: 'DNS observations',
  notifications: 'notifications',
  dns_unpublished: 'DNS changes to apply',
};

export const migrateCommand: CommandModule<GlobalArgs, MigrateArgs> = {
  command: 'migrate',
  describe:
    'copy the SQLite key store of keys.dir, with its history and stored DMARC reports, into a PostgreSQL key store (run again: nothing is copied twice)',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .option('to', { type: 'string', demandOption: true, describe: 'the PostgreSQL store: postgres://user@host/db (the password in --password-file)' })
      .option('encryption-key-file', { type: 'string', describe: 'the key-encryption key to seal the private keys with (default: keys.encryptionKeyFile)' })
      .option('password-file', { type: 'string', describe: 'the database password (default: keys.passwordFile)' })
      .example(
        '$0 keys migrate --to postgresql://dkim@db.example.com/dkim?sslmode=verify-full --encryption-key-file /etc/dkim-relay/kek',
        '',
      ) as Argv<MigrateArgs>,
  handler: async (args) => {
    const { config } = configFrom(args);
    if (!isPostgresUrl(args.to)) throw new UserError('--to must be a postgres:// or postgresql:// URL', 'e.g. --to postgresql://dkim@db.example.com/dkim');
    if (new URL(args.to).password !== '') throw new UserError('--to must not hold a password', 'put it in a file of mode 0600 and give --password-file');
    if (config.keys.database !== undefined) {
      throw new UserError(
        'this configuration already uses keys.database',
        'keys migrate copies the SQLite store of keys.dir: run it with the configuration of the relay whose store it is',
      );
    }
    const encryptionKeyFile = args['encryption-key-file'] ?? config.keys.encryptionKeyFile;
    if (encryptionKeyFile === undefined)
      throw new UserError(
        'no key-encryption key to seal the private keys with',
        'give --encryption-key-file F; make F with: (umask 077; openssl rand -base64 32 > F)',
      );
    const source = SqliteKeyStore.open(config.keys.dir, { create: false });
    try {
      const target = await openPgStore({ dir: config.keys.dir, encryptionKeyFile, passwordFile: args['password-file'] ?? config.keys.passwordFile }, args.to, {
        refreshMs: 0,
      });
      try {
        const result = await copySqliteStore(source, target);
        const reports = await target.transaction((client) => copyReports(source.dbFile, client));
        if (args.json) return printJson({ from: source.location, to: target.location, ...result, reports });
        print(`copied ${source.location} into ${target.location}:`);
        for (const table of COPIED_TABLES) {
          const { rows, added } = result.tables[table];
          print(`  ${TABLE_NAMES[table]}: ${rows} (${added} new, ${rows - added} already there)`);
        }
        print(`  DMARC aggregate reports: ${reports.rows} (${reports.added} new, ${reports.rows - reports.added} already there)`);
        print(`verified ${result.verified} keys: each signed a test message that its public key verified`);
        print(`next: set keys.database: ${redactUrl(args.to)} and keys.encryptionKeyFile: ${encryptionKeyFile} on every relay, and restart them`);
      } finally {
        await target.close();
      }
    } finally {
      source.close();
    }
  },
};

export const rewrapCommand: CommandModule<GlobalArgs, RewrapArgs> = {
  command: 'rewrap',
  describe: 'seal every private key of the PostgreSQL key store again under a new key-encryption key, in one transaction',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .option('new-key-file', { type: 'string', demandOption: true, describe: 'the new key-encryption key: 32 bytes in base64, mode 0600' })
      .example(
        '(umask 077; openssl rand -base64 32 > /etc/dkim-relay/kek.new) && $0 keys rewrap --new-key-file /etc/dkim-relay/kek.new',
        '',
      ) as Argv<RewrapArgs>,
  handler: (args) =>
    withStore(args, async (store) => {
      const shared = sharedStore(store, 'keys rewrap', 'the SQLite store keeps private keys in files of mode 0600, which are not sealed');
      const newKey = readEncryptionKey(args['new-key-file'], '--new-key-file');
      const count = await shared.rewrap(newKey);
      if (args.json) return printJson({ store: store.location, resealed: count });
      print(`${count} private keys in ${store.location} are now sealed under ${args['new-key-file']}`);
      print(`next: make keys.encryptionKeyFile that file on every relay and restart them (running relays sign on with the keys they hold)`);
    }),
};

const forgetCommand: CommandModule<GlobalArgs, ForgetArgs> = {
  command: 'forget <name>',
  describe: "delete a decommissioned relay's heartbeat, so that status no longer lists it (a relay silent for two weeks is forgotten by itself)",
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('name', { type: 'string', demandOption: true, describe: 'the relay as status lists it (its host name)' })
      .option('address', { type: 'string', describe: 'only its heartbeat from this SMTP address (host:port), when one name has several' })
      .example('$0 keys fleet forget relay3.example.com', '') as Argv<ForgetArgs>,
  handler: (args) =>
    withStore(args, async (store) => {
      const shared = sharedStore(store, 'keys fleet forget', 'a relay on its own SQLite store has no fleet');
      const fleet = fleetStatus({ nodes: shared.fleet(), ...shared.connection(), now: new Date() });
      const named = fleet.nodes.filter((n) => n.name === args.name && (args.address === undefined || n.address === args.address));
      if (named.length === 0) {
        const known = fleet.nodes.map((n) => `${n.name} (${n.address})`).join(', ') || 'none';
        throw new UserError(`no relay ${args.name}${args.address ? ` at ${args.address}` : ''} in the fleet`, `the fleet lists: ${known}`);
      }
      const running = named.find((n) => n.state !== 'silent' && n.state !== 'gone');
      if (running) {
        throw new UserError(
          `relay ${running.name} (${running.address}) was heard from ${when(running.lastContact)}: it is running, and would write its heartbeat again`,
          'stop it for good first, then forget it once status shows it not heard from',
        );
      }
      const count = await shared.forgetNodes(named);
      if (args.json)
        return printJson({ store: shared.location, forgotten: named.map((n) => ({ name: n.name, address: n.address, lastContact: n.lastContact })) });
      for (const n of named) print(`forgot ${n.name} (${n.address}), last heard from ${when(n.lastContact)}`);
      if (count < named.length) print(`${named.length - count} of them wrote a heartbeat meanwhile and stays listed`);
    }),
};

export const fleetCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'fleet',
  describe: 'the relays sharing a PostgreSQL key store: forget a decommissioned one (status lists them)',
  builder: (y: Argv<GlobalArgs>) => y.command(forgetCommand).demandCommand(1, 'name a keys fleet command: forget'),
  handler: () => {},
};

/** The store as a PostgreSQL store, or a usage error naming the command. */
function sharedStore(store: KeyStore, command: string, why: string): PgKeyStore {
  if (store.engine !== 'postgres') throw new UserError(`${command} applies to a PostgreSQL key store (keys.database)`, why);
  return store as PgKeyStore;
}
