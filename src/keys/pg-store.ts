// The key store in PostgreSQL, shared by a fleet of relays. Signing never
// waits on the database: every key row is held in memory, loaded at start and
// again after each change (this relay's own writes at once; other relays'
// when a notification on KEYS_CHANNEL arrives, or the periodic look at
// store_generation sees it moved), and every read is answered from that copy.
// When the database cannot be reached the relay signs on with the copy it
// holds; one that never loaded a key set defers mail (451) and keeps trying.
// Writes are transactions that serialise per domain with an advisory lock
// and, like the SQLite engine's, name the state each UPDATE leaves, so a step
// another relay took first rolls back; each also NOTIFYs KEYS_CHANNEL.
import { createPrivateKey, type KeyObject } from 'node:crypto';
import pg from 'pg';
import { UserError } from '../common/errors.ts';
import { migratePostgres } from '../common/schema-migrations.ts';
import { normalizeClientName, normalizeDomain, normalizeSelector, recordName } from '../common/names.ts';
import { fingerprint, generateKey, importKey, type Algorithm, type KeyMaterial } from './key-material.ts';
import { KeyFileError } from './key-file.ts';
import type { ActiveKey, KeyEvent, KeyProblem, KeyStore, NewKeyOptions, Step, StoredKey } from './key-store.ts';
import { Fenced, type Fence } from './fence.ts';
import type { QueuedBySigner } from './heartbeat.ts';
import { creation, decide, type Actor, type KeyState, type Transition } from './lifecycle.ts';
import { ensurePrivateDir } from './permissions.ts';
import { createPool, explainPgError, type PgTarget } from './pg-connection.ts';
import { redactUrl } from './pg-url.ts';
import { pgKeySchema } from './pg-schema.ts';
import { txtValue } from './record.ts';
import { SealError, seal, unseal } from './sealing.ts';
import {
  chainKey,
  chooseSelector,
  destroyRemovedTokenObjects,
  groupActiveKeys,
  nearestSigningDomain,
  STAMP_COLUMN,
  StepRaced,
  TOKEN_OBJECTS_GONE,
  tokenObjectsGone,
  VERB,
  type ChainKeys,
} from './store-rules.ts';
import { checkRsaSize } from './key-material.ts';
import { parseTokenUri, tokenUri } from './pkcs11-objects.ts';
import { tokenLabel, type Pkcs11Token, type TokenHealth, type TokenKey } from './pkcs11-token.ts';

export interface PgStoreOptions extends PgTarget {
  /** The key-encryption key (keys.encryptionKeyFile). */
  encryptionKey: Buffer;
  /** keys.dir: this relay's local files. */
  dir: string;
  /** Told once per key and problem, when an active key cannot be unsealed. */
  onKeyProblem?: (problem: KeyProblem) => void;
  /** Told when a background look at the store fails; the relay signs on with the keys it holds. */
  onRefreshError?: (err: Error) => void;
  /** Told when the store answers again after a failure (or for the first time, when it opened unreachable). */
  onRefreshed?: () => void;
  /** How often other relays' changes are looked for (ms); 0: never (commands that run once). */
  refreshMs?: number;
  /**
   * `serve`: open even when the database cannot be reached, with no keys
   * (mail is deferred, 451) and keep trying at every refresh. Commands that
   * run once fail at once instead.
   */
  startUnreachable?: boolean;
  /** Be told of other relays' changes at once (LISTEN on KEYS_CHANNEL); polling remains the fallback. */
  listen?: boolean;
  /** The PKCS#11 token of keys.pkcs11 (the same token, or a replica of it, on every relay); closed with the store. */
  token?: Pkcs11Token | undefined;
}

/** The channel every write notifies, so the fleet reloads within a second rather than at the next poll. */
export const KEYS_CHANNEL = 'dkim_relay_keys';

/** A relay of the fleet as its last heartbeat (fleet_nodes) told it. */
export interface FleetNode {
  name: string;
  version: string;
  /** Its SMTP listener, host:port. */
  address: string;
  /** The store_generation of the key set it signs with. */
  generation: number;
  loadedAt: string;
  lastContact: string;
  /** What it holds queued, by signing key; null when it does not say (an older version, or its queue could not be read). */
  oldestQueued: QueuedBySigner | null;
}

/** The heartbeat's content: who this relay is, and what its queue holds (read at each heartbeat). */
export interface FleetSelf extends Pick<FleetNode, 'name' | 'version' | 'address'> {
  /** When the oldest queued message signed d=domain s=selector came in (ms), for each such pair. */
  queued?: () => readonly { domain: string; selector: string; oldest: number }[];
}

/** What dns_observations holds, read for `status` (the scheduler reads and writes it through its own tables). */
export interface ObservationRow {
  keyId: number;
  server: string;
  firstSeenMatching: string | null;
  lastChecked: string;
  lastState: string;
  detail: string;
}

/** Whether the database answers, and the key set this relay signs with. */
export interface StoreConnection {
  /** Since when the database has not answered; null while it does. */
  unreachableSince: string | null;
  /** The store_generation of the key set held in memory; null before the first load. */
  generation: number | null;
  /** When that key set was loaded. */
  loadedAt: string | null;
  /** Whether changes are pushed (LISTEN) or only polled for. */
  listening: boolean;
}

/** How often a relay looks whether another one changed the shared key set. */
export const PG_REFRESH_MS = 5_000;

interface KeyRow extends StoredKey {
  sealed: Buffer | null;
}

const COLUMNS = `id, domain, selector, client, algorithm, bits, state, public_data AS "publicData", fingerprint, material, sealed, file,
  created_at AS "createdAt", activated_at AS "activatedAt", retired_at AS "retiredAt", revoked_at AS "revokedAt", removed_at AS "removedAt"`;
const EVENT_COLUMNS = `id, key_id AS "keyId", domain, selector, from_state AS "from", to_state AS "to", "at", "by", why`;

export class PgKeyStore implements KeyStore {
  readonly engine = 'postgres' as const;
  readonly location: string;
  readonly dir: string;
  readonly dbFile: string;
  readonly exposedKeyFiles = 0;
  private readonly pool: pg.Pool;
  private readonly kek: Buffer;
  private readonly password: string | undefined;
  private readonly onKeyProblem: (problem: KeyProblem) => void;
  private readonly token: Pkcs11Token | undefined;
  private tokenGeneration = 0;
  private rows: KeyRow[] = [];
  private events: KeyEvent[] = [];
  /** Removed token keys whose objects are gone, until their TOKEN_OBJECTS_GONE event is in the store. */
  private readonly goneUnrecorded = new Set<number>();
  /** The TOKEN_OBJECTS_GONE events being written; never rejects. */
  private recording: Promise<void> = Promise.resolve();
  private generation = -1;
  private active = new Map<string, { keys: ActiveKey[]; problems: KeyFileError[] }>();
  /** Parsed private keys by id, with the sealed bytes they came from: a reload parses only what changed. */
  private readonly parsed = new Map<number, { sealed: Buffer; key: KeyObject }>();
  private reported = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private loading: Promise<void> | undefined;
  private readonly target: PgStoreOptions;
  private migrated = false;
  private loadedAt: Date | null = null;
  private unreachableSince: Date | null = null;
  private listener: pg.Client | undefined;
  private subscribing: Promise<void> | undefined;
  private closed = false;
  private self: FleetSelf | undefined;
  private fleetRows: FleetNode[] = [];
  private observationRows: ObservationRow[] = [];

  private constructor(options: PgStoreOptions) {
    this.target = options;
    this.location = redactUrl(options.url);
    this.dir = options.dir;
    this.dbFile = `${options.dir}/keys.db`;
    this.kek = options.encryptionKey;
    this.password = options.password;
    this.onKeyProblem = options.onKeyProblem ?? (() => {});
    this.token = options.token;
    this.pool = createPool(options);
    ensurePrivateDir(options.dir);
  }

  /**
   * Connects, migrates the schema (once, whoever starts first) and loads the
   * key set. With startUnreachable, a database that does not answer yet
   * leaves the store open and empty, trying again at every refresh.
   */
  static async open(options: PgStoreOptions): Promise<PgKeyStore> {
    const store = new PgKeyStore(options);
    try {
      await store.refresh();
    } catch (err) {
      if (!options.startUnreachable) {
        await store.pool.end().catch(() => {});
        store.token?.close();
        throw store.explain(err);
      }
      store.unreachableSince = new Date();
      options.onRefreshError?.(store.explain(err));
    }
    const every = options.refreshMs ?? PG_REFRESH_MS;
    if (every > 0) {
      store.timer = setInterval(() => void store.poll(), every);
      store.timer.unref();
    }
    if (options.listen) await store.subscribe();
    return store;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.subscribing?.catch(() => {});
    await this.listener?.end().catch(() => {});
    await this.loading?.catch(() => {});
    await this.recording;
    await this.pool.end();
    this.token?.close();
  }

  tokenHealth(): TokenHealth | undefined {
    return this.token?.health();
  }

  probeToken(): void {
    this.token?.probe();
    // Regrouped at once so that a token lost or back is told in the log (onKeyProblem) without waiting for mail.
    this.followToken();
  }

  /** Loads the key set again if another relay changed it since the last load (first: migrates the schema). */
  async refresh(): Promise<void> {
    if (!this.migrated) {
      await this.withClient((client) => migratePostgres(client, pgKeySchema(this.location)));
      this.migrated = true;
    }
    const { rows } = await this.pool.query<{ generation: string }>(`SELECT generation FROM store_generation`);
    if (Number(rows[0]!.generation) !== this.generation) await this.reload();
    if (this.self && this.loadedAt) {
      const now = new Date().toISOString();
      const queued = this.queuedBySigner();
      await this.pool.query(
        `INSERT INTO fleet_nodes (name, version, address, generation, loaded_at, last_contact, oldest_queued) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (name, address) DO UPDATE SET version = excluded.version, generation = excluded.generation, loaded_at = excluded.loaded_at,
           last_contact = excluded.last_contact, oldest_queued = excluded.oldest_queued`,
        [this.self.name, this.self.version, this.self.address, this.generation, this.loadedAt.toISOString(), now, queued && JSON.stringify(queued)],
      );
    }
    const fleet = await this.pool.query<FleetNode & { generation: string }>(
      `SELECT name, version, address, generation, loaded_at AS "loadedAt", last_contact AS "lastContact", oldest_queued AS "oldestQueued"
       FROM fleet_nodes ORDER BY name, address`,
    );
    this.fleetRows = fleet.rows.map((r) => ({ ...r, generation: Number(r.generation) }));
    const observations = await this.pool.query<ObservationRow>(
      `SELECT key_id AS "keyId", server, first_seen_matching AS "firstSeenMatching", last_checked AS "lastChecked", last_state AS "lastState", detail
       FROM dns_observations ORDER BY key_id, server`,
    );
    this.observationRows = observations.rows;
  }

  /** `serve`: this relay's heartbeat, written at every look at the store (fleet_nodes), for `status` on any relay. */
  announce(self: FleetSelf): void {
    this.self = self;
    void this.poll();
  }

  /** Every relay's last heartbeat, as of the last look at the store. */
  fleet(): FleetNode[] {
    return this.fleetRows;
  }

  /** The other relays' last heartbeats: this relay's own queue is read where it is, not from its last heartbeat. */
  peers(): FleetNode[] {
    return this.fleetRows.filter((n) => !(n.name === this.self?.name && n.address === this.self.address));
  }

  /**
   * This relay's queue by signing key, as the heartbeat carries it; a key
   * removed since has no entry (its record is gone). null when the queue
   * could not be read: "nothing queued" would let the fleet revoke a key.
   */
  private queuedBySigner(): Record<string, string> | null {
    let queued: readonly { domain: string; selector: string; oldest: number }[];
    try {
      queued = this.self?.queued?.() ?? [];
    } catch {
      return null;
    }
    const ids = new Map(this.rows.filter((k) => k.state !== 'removed').map((k) => [`${k.domain} ${k.selector}`, k.id]));
    const out: Record<string, string> = {};
    for (const { domain, selector, oldest } of queued) {
      const id = ids.get(`${domain} ${selector}`);
      if (id !== undefined) out[id] = new Date(oldest).toISOString();
    }
    return out;
  }

  /**
   * Deletes these relays' heartbeats (fleet_nodes), each only if its last
   * contact is still the one given: a relay heard from again in the meantime
   * stays. The number deleted.
   */
  async forgetNodes(nodes: readonly Pick<FleetNode, 'name' | 'address' | 'lastContact'>[]): Promise<number> {
    if (nodes.length === 0) return 0;
    const { rowCount } = await this.pool.query(
      `DELETE FROM fleet_nodes WHERE (name, address, last_contact) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))`,
      [nodes.map((n) => n.name), nodes.map((n) => n.address), nodes.map((n) => n.lastContact)],
    );
    const gone = (r: FleetNode) => nodes.some((n) => n.name === r.name && n.address === r.address && n.lastContact === r.lastContact);
    this.fleetRows = this.fleetRows.filter((r) => !gone(r));
    return rowCount ?? 0;
  }

  /** What the rotation's DNS observation last recorded, as of the last look at the store. */
  observations(): ObservationRow[] {
    return this.observationRows;
  }

  /** Whether the database answers, and which key set this relay holds. */
  connection(): StoreConnection {
    return {
      unreachableSince: this.unreachableSince?.toISOString() ?? null,
      generation: this.generation < 0 ? null : this.generation,
      loadedAt: this.loadedAt?.toISOString() ?? null,
      listening: this.listener !== undefined,
    };
  }

  /** A pool of its own on the same database, for the rotation scheduler's tables. */
  openPool(): pg.Pool {
    return createPool(this.target, 2);
  }

  /** One periodic look: reload if needed, resubscribe if the notification connection dropped; never throws. */
  private async poll(): Promise<void> {
    try {
      await this.refresh();
      if (this.unreachableSince) {
        this.unreachableSince = null;
        this.target.onRefreshed?.();
      }
      if (this.target.listen && !this.listener) await this.subscribe();
    } catch (err) {
      this.unreachableSince ??= new Date();
      this.target.onRefreshError?.(this.explain(err));
    }
  }

  /**
   * LISTEN on KEYS_CHANNEL on a connection of its own: each write's NOTIFY
   * makes every relay reload at once. A connection that drops is dropped
   * here too; the poll goes on and subscribes again.
   */
  private subscribe(): Promise<void> {
    if (this.subscribing || this.listener || this.closed) return this.subscribing ?? Promise.resolve();
    const url = new URL(this.target.url);
    if (this.target.password !== undefined) url.password = encodeURIComponent(this.target.password);
    const client = new pg.Client({ connectionString: url.toString(), connectionTimeoutMillis: 5_000 });
    const drop = () => {
      if (this.listener === client) this.listener = undefined;
      client.end().catch(() => {});
    };
    client.on('error', drop);
    client.on('end', drop);
    client.on('notification', () => void this.poll());
    this.subscribing = (async () => {
      try {
        await client.connect();
        await client.query(`LISTEN ${KEYS_CHANNEL}`);
        if (this.closed) return drop();
        this.listener = client;
        // A change made while no one listened is picked up now, not at the next poll.
        await this.poll();
      } catch {
        drop();
      } finally {
        this.subscribing = undefined;
      }
    })();
    return this.subscribing;
  }

  list(domain?: string): StoredKey[] {
    const wanted = domain === undefined ? undefined : normalizeDomain(domain);
    return this.rows.filter((k) => wanted === undefined || k.domain === wanted).map(publicRow);
  }

  find(domain: string, selector: string): StoredKey | undefined {
    const d = normalizeDomain(domain);
    const s = normalizeSelector(selector);
    const matching = this.rows.filter((k) => k.domain === d && k.selector === s);
    // The live key holding the selector, else the last one removed.
    const found = matching.find((k) => k.state !== 'removed') ?? matching.sort((a, b) => b.id - a.id)[0];
    return found && publicRow(found);
  }

  get(domain: string, selector: string): StoredKey {
    const key = this.find(domain, selector);
    if (!key) throw new UserError(`no key ${selector} for ${domain}`, 'see `dkim-relay keys list`');
    return key;
  }

  history(domain?: string): KeyEvent[] {
    const wanted = domain === undefined ? undefined : normalizeDomain(domain);
    return this.events.filter((e) => wanted === undefined || e.domain === wanted);
  }

  privatePem(key: StoredKey): string {
    if (key.material === 'pkcs11') {
      throw new UserError(
        `the private key of ${key.selector} for ${key.domain} is in a PKCS#11 token and cannot leave it`,
        'export the public key: leave out --private',
      );
    }
    const row = this.rows.find((r) => r.id === key.id);
    if (!row?.sealed) throw new UserError(`key ${key.selector} for ${key.domain} has no private key any more (removed)`, 'see `dkim-relay keys history`');
    return this.unsealRow(row);
  }

  signingDomainFor(fromDomain: string, client?: string): string | null {
    // No key set loaded yet: the domain waits (activeKeys says why) rather than leaving unsigned.
    if (this.generation < 0) return fromDomain.toLowerCase().replace(/\.$/, '');
    this.followToken();
    return nearestSigningDomain(this.active, fromDomain, client);
  }

  activeKeys(domain: string, client?: string): ActiveKey[] {
    if (this.generation < 0) {
      throw new KeyFileError(
        'unreadable',
        `the key store ${this.location} has not answered since this relay started: no keys are loaded yet`,
        'check that PostgreSQL runs; the relay keeps trying and signs as soon as it answers',
      );
    }
    this.followToken();
    const entry = this.active.get(chainKey(domain, client));
    if (entry?.problems[0]) throw entry.problems[0];
    return entry?.keys ?? [];
  }

  /** A token that went down or came back, or is due another try, changes which keys sign: the active keys are grouped again. */
  private followToken(): void {
    if (!this.token || this.generation < 0) return;
    if (this.token.generation === this.tokenGeneration && !this.token.retryDue()) return;
    this.tokenGeneration = this.token.generation;
    this.active = this.activeMap();
  }

  checkActiveKeys(): StoredKey[] {
    this.followToken();
    const usable = new Set([...this.active.values()].flatMap((d) => d.keys).map((k) => `${k.selector}._domainkey.${k.domain}`));
    return this.list().filter((k) => k.state === 'active' && usable.has(`${k.selector}._domainkey.${k.domain}`));
  }

  publishedValue(name: string): string | undefined {
    const lower = name.toLowerCase();
    const at = lower.indexOf('._domainkey.');
    const selector = lower.slice(0, at);
    const domain = lower.slice(at + '._domainkey.'.length).replace(/\.$/, '');
    if (at <= 0 || domain === '') return undefined;
    const key = this.rows.find((k) => k.selector === selector && k.domain === domain && k.state !== 'removed');
    return key ? txtValue(key) : undefined;
  }

  /**
   * A removed key's sealed half is cleared in the transaction that removes it;
   * a removed token key's objects are destroyed here (by whichever relay
   * sweeps first; while its token is away, tried again next time), and its
   * TOKEN_OBJECTS_GONE event, written in the background, keeps every relay from
   * asking the token about it again.
   */
  deleteRemovedFiles(by: Actor = 'scheduler'): string[] {
    if (!this.token) return [];
    const recorded = new Set(this.events.filter((e) => e.why === TOKEN_OBJECTS_GONE).map((e) => e.keyId));
    const removed = this.rows.filter((r) => r.state === 'removed' && !recorded.has(r.id) && !this.goneUnrecorded.has(r.id));
    const gone = destroyRemovedTokenObjects(removed, this.token);
    if (gone.length === 0) return [];
    for (const { key } of gone) this.goneUnrecorded.add(key.id);
    const at = new Date();
    const recording = this.write(async (client) => {
      // Locked in one order, so two relays recording at once cannot deadlock.
      for (const { key } of [...gone].sort((a, b) => a.key.domain.localeCompare(b.key.domain))) {
        await lockDomain(client, key.domain);
        const t = tokenObjectsGone(key, at, by);
        await client.query(
          `INSERT INTO events (key_id, domain, selector, from_state, to_state, "at", "by", why)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE NOT EXISTS (SELECT 1 FROM events WHERE key_id = $1 AND why = $8)`,
          [t.keyId, t.domain, t.selector, t.from, t.to, t.at, t.by, t.why],
        );
      }
    })
      // Not written: the next sweep asks the token once more (it finds nothing) and writes the events then.
      .catch(() => {})
      .finally(() => {
        for (const { key } of gone) this.goneUnrecorded.delete(key.id);
      });
    this.recording = Promise.all([this.recording, recording]).then(() => {});
    return gone.filter((g) => g.destroyed > 0).map((g) => g.key.file);
  }

  async generate(options: NewKeyOptions & { algorithm: Algorithm; bits?: number }): Promise<StoredKey> {
    if (!(options.inToken ?? this.token?.settings.newKeys ?? false)) return this.add(options, generateKey(options.algorithm, options.bits));
    const token = this.requireToken();
    const bits = options.bits ?? 2048;
    if (options.algorithm === 'rsa') checkRsaSize(bits);
    // Made before the transaction (off the event loop), named once the selector is chosen; destroyed if the store does not take it.
    const made = await token.generate(options.algorithm, bits, tokenLabel(`new key for ${normalizeDomain(options.domain)}`));
    try {
      return await this.add(options, { algorithm: options.algorithm, bits: made.bits, publicData: made.publicData }, (selector, domain) => {
        token.relabel(made.ref, tokenLabel(recordName(selector, domain)));
        return tokenUri(made.ref);
      });
    } catch (err) {
      token.destroy(made.ref);
      throw err;
    }
  }

  async import(options: NewKeyOptions & { pem: string; source: string }): Promise<StoredKey> {
    const material = importKey(options.pem, options.source);
    if (!options.inToken) return this.add(options, material);
    const token = this.requireToken();
    let ref: ReturnType<Pkcs11Token['importPem']> | undefined;
    try {
      return await this.add(options, material, (selector, domain) => {
        ref = token.importPem(material.privatePem, tokenLabel(recordName(selector, domain)));
        return tokenUri(ref);
      });
    } catch (err) {
      if (ref) token.destroy(ref);
      throw err;
    }
  }

  private requireToken(): Pkcs11Token {
    if (!this.token) throw new UserError('no PKCS#11 token is configured', 'set keys.pkcs11 (module, token, pinFile) in the configuration');
    return this.token;
  }

  async activate(domain: string, selector: string, step: Step = {}): Promise<StoredKey> {
    const key = this.get(domain, selector);
    // It must open (or be found in the token) before it signs.
    if (key.state !== 'active' && key.state !== 'revoked' && key.state !== 'removed') {
      if (key.material === 'pkcs11') this.tokenKey(key);
      else this.privatePem(key);
    }
    return this.change(key, 'active', step);
  }

  retire(domain: string, selector: string, step: Step = {}): Promise<StoredKey> {
    return this.change(this.get(domain, selector), 'retiring', step);
  }

  revoke(domain: string, selector: string, step: Step = {}): Promise<StoredKey> {
    return this.change(this.get(domain, selector), 'revoked', step);
  }

  async remove(domain: string, selector: string, step: Step = {}): Promise<StoredKey> {
    const key = await this.change(this.get(domain, selector), 'removed', step);
    this.deleteRemovedFiles(step.by ?? 'cli');
    await this.recording;
    return key;
  }

  async applyTransitions(transitions: readonly Transition[], fence?: Fence): Promise<boolean> {
    try {
      await this.write(async (client) => {
        if (fence) await checkFence(client, fence);
        for (const t of transitions) await writeTransition(client, t);
      });
      const removal = transitions.find((t) => t.to === 'removed');
      if (removal) {
        this.deleteRemovedFiles(removal.by);
        await this.recording;
      }
      return true;
    } catch (err) {
      if (err instanceof StepRaced) return false;
      throw err;
    }
  }

  /**
   * Seals every private key again under `newKek`, in one transaction: either
   * every key opens with the new key-encryption key afterwards, or nothing changed.
   * Returns how many keys were sealed again.
   */
  async rewrap(newKek: Buffer): Promise<number> {
    let count = 0;
    await this.write(async (client) => {
      const { rows } = await client.query<{ id: number; sealed: Buffer; domain: string; selector: string }>(
        `SELECT id, sealed, domain, selector FROM keys WHERE sealed IS NOT NULL ORDER BY id FOR UPDATE`,
      );
      for (const row of rows) {
        let pem: string;
        try {
          pem = unseal(this.kek, row.id, row.sealed);
        } catch {
          throw new UserError(
            `the key ${recordName(row.selector, row.domain)} does not open with the current keys.encryptionKeyFile`,
            'run keys rewrap with the key-encryption key the store was sealed with in keys.encryptionKeyFile',
          );
        }
        await client.query(`UPDATE keys SET sealed = $1 WHERE id = $2`, [seal(newKek, row.id, pem), row.id]);
        count++;
      }
    });
    return count;
  }

  /** For `keys migrate`: runs `work` in one write transaction (its client), then reloads. */
  async transaction<T>(work: (client: pg.ClientBase, kek: Buffer) => Promise<T>): Promise<T> {
    let result!: T;
    await this.write(async (client) => {
      result = await work(client, this.kek);
    });
    return result;
  }

  /**
   * Inserts the row in a transaction that chose its selector. `inToken`, for
   * a key in the token: names its objects after the chosen selector and
   * returns its URI; the row then holds no private half.
   */
  private async add(
    options: NewKeyOptions,
    material: Pick<KeyMaterial, 'algorithm' | 'bits' | 'publicData'> & Partial<KeyMaterial>,
    inToken?: (selector: string, domain: string) => string,
  ): Promise<StoredKey> {
    const domain = normalizeDomain(options.domain);
    const wanted = options.selector === undefined ? undefined : normalizeSelector(options.selector);
    const client = options.client === undefined ? undefined : normalizeClientName(options.client);
    const at = options.step?.at ?? new Date();
    let id = 0;
    await this.write(async (db) => {
      if (options.step?.fence) await checkFence(db, options.step.fence);
      await lockDomain(db, domain);
      const { rows: existing } = await db.query<Pick<StoredKey, 'selector' | 'algorithm' | 'state' | 'client'>>(
        `SELECT selector, algorithm, state, client FROM keys WHERE domain = $1`,
        [domain],
      );
      const chosen = chooseSelector(domain, existing, { selector: wanted, algorithm: material.algorithm, activate: options.activate ?? false, at, client });
      // The id is known before the row is written: it is the sealed key's associated data.
      const next = await db.query<{ id: string }>(`SELECT nextval(pg_get_serial_sequence('keys', 'id')) AS id`);
      id = Number(next.rows[0]!.id);
      const now = at.toISOString();
      const state: KeyState = options.activate ? 'active' : 'pending';
      const uri = inToken?.(chosen, domain);
      await db.query(
        `INSERT INTO keys (id, domain, selector, client, algorithm, bits, state, public_data, fingerprint, material, sealed, file, created_at, activated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $14, $10, $11, $12, $13)`,
        [
          id,
          domain,
          chosen,
          client ?? null,
          material.algorithm,
          material.bits,
          state,
          material.publicData,
          fingerprint(material.publicData),
          uri === undefined ? seal(this.kek, id, material.privatePem!) : null,
          uri ?? `${recordName(chosen, domain)}.pem`,
          now,
          options.activate ? now : null,
          uri === undefined ? 'sealed' : 'pkcs11',
        ],
      );
      const why = options.step?.why ?? (options.activate ? 'created and activated' : 'created');
      await insertEvent(db, creation({ id, domain, selector: chosen, state }, { at, by: options.step?.by ?? 'cli', why }));
    });
    return publicRow(this.rows.find((r) => r.id === id)!);
  }

  private async change(key: StoredKey, to: KeyState, step: Step): Promise<StoredKey> {
    const context = { at: step.at ?? new Date(), by: step.by ?? ('cli' as const), why: step.why ?? `keys ${VERB[to]}` };
    await this.write(async (client) => {
      if (step.fence) await checkFence(client, step.fence);
      await lockDomain(client, key.domain);
      const { rows } = await client.query<KeyRow>(`SELECT ${COLUMNS} FROM keys WHERE domain = $1`, [key.domain]);
      const decision = decide(rows, key.id, to, context);
      if (!decision.ok) throw new UserError(decision.reason, decision.hint);
      for (const t of decision.transitions) await writeTransition(client, t);
    });
    return publicRow(this.rows.find((r) => r.id === key.id)!);
  }

  /** One transaction that also moves store_generation on, then the key set reloaded. */
  private async write(work: (client: pg.ClientBase) => Promise<void>): Promise<void> {
    try {
      await this.withClient(async (client) => {
        await client.query('BEGIN');
        try {
          await work(client);
          const { rows } = await client.query<{ generation: string }>(`UPDATE store_generation SET generation = generation + 1 RETURNING generation`);
          // Sent at COMMIT, to every relay listening.
          await client.query(`SELECT pg_notify($1, $2)`, [KEYS_CHANNEL, rows[0]!.generation]);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => {});
          throw err;
        }
      });
    } catch (err) {
      if (err instanceof StepRaced || err instanceof UserError || err instanceof Fenced) throw err;
      throw this.explain(err);
    }
    await this.reload();
  }

  private async withClient<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      return await work(client);
    } finally {
      client.release();
    }
  }

  /** Reads every key and event in one snapshot, then swaps the in-memory copy at once. */
  private reload(): Promise<void> {
    const load = (async () => {
      const snapshot = await this.withClient(async (client) => {
        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        try {
          const generation = await client.query<{ generation: string }>(`SELECT generation FROM store_generation`);
          const keys = await client.query<KeyRow>(`SELECT ${COLUMNS} FROM keys ORDER BY domain, created_at, id`);
          const events = await client.query<KeyEvent>(`SELECT ${EVENT_COLUMNS} FROM events ORDER BY "at", id`);
          return { generation: Number(generation.rows[0]!.generation), keys: keys.rows, events: events.rows };
        } finally {
          await client.query('COMMIT').catch(() => {});
        }
      });
      this.rows = snapshot.keys;
      this.events = snapshot.events;
      this.active = this.activeMap();
      this.generation = snapshot.generation;
      this.loadedAt = new Date();
    })();
    this.loading = load;
    return load;
  }

  private activeMap(): Map<string, ChainKeys> {
    const rows = this.rows.filter((r) => r.state === 'active').sort((a, b) => (b.activatedAt ?? '').localeCompare(a.activatedAt ?? '') || b.id - a.id);
    const { byChain: map, reported } = groupActiveKeys(rows, (row) => this.parsedKey(row), this.reported, this.onKeyProblem);
    this.reported = reported;
    const active = new Set(rows.map((r) => r.id));
    for (const id of this.parsed.keys()) if (!active.has(id)) this.parsed.delete(id);
    return map;
  }

  /**
   * The parsed key of an active row. Sealed bytes that changed (keys rewrap)
   * but no longer open here keep the key parsed before: it is the same key,
   * and this relay's keys.encryptionKeyFile is replaced after the rewrap.
   */
  private parsedKey(row: KeyRow): KeyObject | TokenKey {
    if (row.material === 'pkcs11') return this.tokenKey(row);
    const cached = this.parsed.get(row.id);
    if (cached && row.sealed && cached.sealed.equals(row.sealed)) return cached.key;
    let pem: string;
    try {
      pem = this.unsealRow(row);
    } catch (err) {
      if (cached) return cached.key;
      throw err;
    }
    let key: KeyObject;
    try {
      key = createPrivateKey(pem);
    } catch {
      throw new KeyFileError(
        'damaged',
        `the sealed key ${recordName(row.selector, row.domain)} in ${this.location} is not a readable private key`,
        'retire and revoke the key, and generate a new one',
      );
    }
    this.parsed.set(row.id, { sealed: row.sealed!, key });
    return key;
  }

  private tokenKey(key: StoredKey): TokenKey {
    const ref = parseTokenUri(key.file);
    const what = recordName(key.selector, key.domain);
    if (!this.token || this.token.settings.token !== ref.token) {
      throw new KeyFileError(
        'token unavailable',
        `the private key of ${what} is in PKCS#11 token "${ref.token}", which this relay has not configured`,
        'set keys.pkcs11 to that token (every relay of the fleet needs it)',
      );
    }
    return this.token.signingKey(ref, key.algorithm, key.bits, what);
  }

  private unsealRow(row: KeyRow): string {
    try {
      return unseal(this.kek, row.id, row.sealed ?? Buffer.alloc(0));
    } catch (err) {
      if (!(err instanceof SealError)) throw err;
      throw new KeyFileError(
        'damaged',
        `the sealed key ${recordName(row.selector, row.domain)} in ${this.location} ${err.message}`,
        'set keys.encryptionKeyFile to the key-encryption key the fleet uses (after `keys rewrap`, the new one)',
      );
    }
  }

  private explain(err: unknown): Error {
    return explainPgError(err, this.location, this.password);
  }
}

function publicRow({ sealed: _sealed, ...key }: KeyRow): StoredKey {
  return key;
}

/**
 * Refuses the transaction unless the lease is still at the writer's epoch.
 * FOR SHARE holds the row: a takeover waits for this transaction to end.
 */
export async function checkFence(client: pg.ClientBase, fence: Fence): Promise<void> {
  const { rows } = await client.query<{ epoch: string }>(`SELECT epoch FROM leases WHERE name = $1 FOR SHARE`, [fence.lease]);
  const current = rows[0] === undefined ? null : Number(rows[0].epoch);
  if (current !== fence.epoch) throw new Fenced(fence, current);
}

/** Serialises the writers of one domain (selector choice, lifecycle decisions) across every relay. */
async function lockDomain(client: pg.ClientBase, domain: string): Promise<void> {
  await client.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [`dkim-relay domain ${domain}`]);
}

/** Each UPDATE leaves the state the transition names, or the step raced and rolls back. A removed key loses its sealed half. */
async function writeTransition(client: pg.ClientBase, t: Transition): Promise<void> {
  if (t.from === null) throw new Error(`a creation event is written by add(), not applied (key ${t.keyId})`);
  if (t.to === 'pending') throw new Error(`no key goes back to pending (key ${t.keyId})`);
  const reset = t.to === 'active' ? ', retired_at = NULL' : '';
  const erase = t.to === 'removed' ? ', sealed = NULL' : '';
  const { rowCount } = await client.query(`UPDATE keys SET state = $1, ${STAMP_COLUMN[t.to]} = $2${reset}${erase} WHERE id = $3 AND state = $4`, [
    t.to,
    t.at,
    t.keyId,
    t.from,
  ]);
  if (rowCount === 0) throw new StepRaced(`key ${t.keyId} is no longer ${t.from}`);
  await insertEvent(client, t);
}

async function insertEvent(client: pg.ClientBase, t: Transition): Promise<void> {
  await client.query(`INSERT INTO events (key_id, domain, selector, from_state, to_state, "at", "by", why) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, [
    t.keyId,
    t.domain,
    t.selector,
    t.from,
    t.to,
    t.at,
    t.by,
    t.why,
  ]);
}
