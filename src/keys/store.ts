// The key store: PKCS#8 PEM files (0600) beside a SQLite database of metadata,
// in one directory (0700). The daemon and the CLI share it; the daemon notices
// the CLI's changes through SQLite's data_version, without a restart.
//
// Every change of state is decided by the lifecycle (src/keys/lifecycle.ts)
// and written with its events (the audit trail: who, when, why) in one
// IMMEDIATE transaction; each UPDATE names the state it leaves, so a change
// someone else made first rolls the whole step back instead of repeating it.
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { closeSync, existsSync, fchownSync, fsyncSync, linkSync, lstatSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { UserError } from '../common/errors.ts';
import { createFileSync } from '../common/file-create.ts';
import { explainDatabaseError, openDatabase, type Db, type Statement } from './database.ts';
import { checkRsaSize, fingerprint, generateKey, importKey, type Algorithm, type KeyMaterial } from './key-material.ts';
import { normalizeClientName, normalizeDomain, normalizeSelector, recordName } from '../common/names.ts';
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
import { KeyFileError, readKeyFile, type KeyFileProblemKind } from './key-file.ts';
import { creation, decide, type Actor, type KeyState, type Transition } from './lifecycle.ts';
import type { ActiveKey, KeyEvent, KeyProblem, KeyStore as KeyStoreApi, NewKeyOptions, Step, StoredKey } from './key-store.ts';
import { ensurePrivateDir, ownerToKeep, type Owner } from './permissions.ts';
import { txtValue } from './record.ts';
import { isTokenUri, parseTokenUri, tokenUri } from './pkcs11-objects.ts';
import { tokenLabel, type Pkcs11Token, type TokenHealth, type TokenKey } from './pkcs11-token.ts';

export type { ActiveKey, KeyEvent, KeyProblem, KeyState, NewKeyOptions, Step, StoredKey } from './key-store.ts';

export interface StoreOptions {
  /** How long a busy database is waited for. */
  timeoutMs?: number;
  /** Told once per key and problem, when an active key cannot be loaded. */
  onKeyProblem?: (problem: KeyProblem) => void;
  /** Active key files are checked again (mode, owner, content) at least this often. */
  recheckMs?: number;
  /** Milliseconds now; tests pass a clock of their own. */
  now?: () => number;
  /**
   * Create the store when there is none (the default: serve, and the commands
   * that add keys). false: a missing store is a UserError naming where it was
   * looked for, and nothing is created.
   */
  create?: boolean;
  /** The PKCS#11 token of keys.pkcs11; closed with the store. */
  token?: Pkcs11Token | undefined;
}

/** Where a new key's private half goes: put() writes it and names it in the row's file column, undo() takes it back. */
interface Placement {
  put(selector: string, domain: string): string;
  undo(file: string): void;
}

/** How often the active key files are checked again when nothing in the database changed. */
export const KEY_RECHECK_MS = 30_000;

const COLUMNS = `id, domain, selector, client, algorithm, bits, state, public_data AS publicData, fingerprint,
  CASE WHEN file LIKE 'pkcs11:%' THEN 'pkcs11' ELSE 'file' END AS material, file,
  created_at AS createdAt, activated_at AS activatedAt, retired_at AS retiredAt, revoked_at AS revokedAt, removed_at AS removedAt`;

/** Records publishedValue keeps at most; any name may be asked for (`message verify`), so the cache is bounded. */
const PUBLISHED_CACHE_SIZE = 256;

/** A removed key keeps its row for history; its selector may be taken again by a new key. */
const LIVE = `state <> 'removed'`;

/**
 * A store opened without a token makes every key at once; with one, a key
 * generated in the token comes later (a promise).
 */
export class SqliteKeyStore<Generated extends StoredKey | Promise<StoredKey> = StoredKey> implements KeyStoreApi {
  readonly engine = 'sqlite' as const;
  readonly dir: string;
  readonly location: string;
  readonly dbFile: string;
  /** The directory was open to others and has been made 0700. */
  readonly tightenedDir: boolean;
  /** Key files the directory held while it was open to others. */
  readonly exposedKeyFiles: number;
  /** Run as root in another user's store: the owner every file created here gets. */
  private readonly owner: Owner | undefined;
  private readonly db: Db;
  private readonly onKeyProblem: (problem: KeyProblem) => void;
  private readonly recheckMs: number;
  private readonly now: () => number;
  private readonly token: Pkcs11Token | undefined;
  private tokenGeneration = 0;
  private dataVersion = -1;
  /** Every active key by chain; null until needed again after a change. */
  private activeByChain: Map<string, ChainKeys> | null = null;
  private loadedAt = 0;
  /** "key id:problem" already told to onKeyProblem, so a broken key is logged once, not per message. */
  private reported = new Set<string>();
  private readonly parsed = new Map<number, { stamp: string; key: KeyObject }>();
  /** publishedValue's answers (undefined: nothing published) while data_version stays publishedVersion. */
  private readonly published = new Map<string, string | undefined>();
  private publishedVersion = -1;
  private readonly statements = new Map<string, Statement>();

  private constructor(dir: string, options: StoreOptions) {
    this.dir = dir;
    this.dbFile = join(dir, 'keys.db');
    this.location = dir;
    // A read-only command checks the directory as serve would (symbolic links, mode), but makes nothing.
    if (options.create === false) requireStore(dir, dir);
    const privateDir = ensurePrivateDir(dir);
    if (options.create === false) requireStore(dir, this.dbFile);
    this.tightenedDir = privateDir.tightened;
    this.exposedKeyFiles = privateDir.exposedKeyFiles;
    this.owner = ownerToKeep(dir);
    this.onKeyProblem = options.onKeyProblem ?? (() => {});
    this.recheckMs = options.recheckMs ?? KEY_RECHECK_MS;
    this.now = options.now ?? Date.now;
    this.token = options.token;
    // A new database made by root is made the owner's first: SQLite then gives its -wal and -shm files the same owner.
    if (this.owner && !existsSync(this.dbFile)) closeSync(createOwnedFile(this.dbFile, this.owner));
    this.db = openDatabase(this.dbFile, options.timeoutMs ?? 5000);
  }

  static open(dir: string, options?: StoreOptions & { token?: undefined }): SqliteKeyStore;
  static open(dir: string, options: StoreOptions): SqliteKeyStore<StoredKey | Promise<StoredKey>>;
  static open(dir: string, options: StoreOptions = {}): SqliteKeyStore<StoredKey | Promise<StoredKey>> {
    return new SqliteKeyStore(dir, options);
  }

  close(): void {
    this.db.close();
    this.token?.close();
  }

  list(domain?: string): StoredKey[] {
    return this.query(() =>
      domain
        ? this.statement(`SELECT ${COLUMNS} FROM keys WHERE domain = ? ORDER BY domain, created_at, id`).all(normalizeDomain(domain))
        : this.statement(`SELECT ${COLUMNS} FROM keys ORDER BY domain, created_at, id`).all(),
    ) as StoredKey[];
  }

  find(domain: string, selector: string): StoredKey | undefined {
    return this.query(() =>
      // The live key holding the selector, else the last one removed (for its history and a clear refusal).
      this.statement(`SELECT ${COLUMNS} FROM keys WHERE domain = ? AND selector = ? ORDER BY state = 'removed', id DESC LIMIT 1`).get(
        normalizeDomain(domain),
        normalizeSelector(selector),
      ),
    ) as StoredKey | undefined;
  }

  /** The key or a UserError naming the command that lists what exists. */
  get(domain: string, selector: string): StoredKey {
    const key = this.find(domain, selector);
    if (!key) throw new UserError(`no key ${selector} for ${domain}`, 'see `dkim-relay keys list`');
    return key;
  }

  /** A new key: a file key at once; a key in the token once the token has made it (off the event loop). */
  generate(options: NewKeyOptions & { algorithm: Algorithm; bits?: number }): Generated {
    if (options.inToken ?? this.token?.settings.newKeys ?? false) return this.generateInToken(options) as Generated;
    return this.add(options, generateKey(options.algorithm, options.bits)) as Generated;
  }

  /**
   * The pair is made first, under a provisional label, then named after the
   * selector chosen inside the transaction; objects of a key the store did
   * not take are destroyed.
   */
  private async generateInToken(options: NewKeyOptions & { algorithm: Algorithm; bits?: number }): Promise<StoredKey> {
    const token = this.requireToken();
    const bits = options.bits ?? 2048;
    if (options.algorithm === 'rsa') checkRsaSize(bits);
    const made = await token.generate(options.algorithm, bits, tokenLabel(`new key for ${normalizeDomain(options.domain)}`));
    let placed = false;
    try {
      return this.add(
        options,
        { algorithm: options.algorithm, bits: made.bits, publicData: made.publicData },
        {
          put: (selector, domain) => {
            token.relabel(made.ref, tokenLabel(recordName(selector, domain)));
            placed = true;
            return tokenUri(made.ref);
          },
          undo: (file) => token.destroy(parseTokenUri(file)),
        },
      );
    } catch (err) {
      if (!placed) token.destroy(made.ref);
      throw err;
    }
  }

  import(options: NewKeyOptions & { pem: string; source: string }): StoredKey {
    const material = importKey(options.pem, options.source);
    if (!options.inToken) return this.add(options, material);
    const token = this.requireToken();
    return this.add(options, material, {
      put: (selector, domain) => tokenUri(token.importPem(material.privatePem, tokenLabel(recordName(selector, domain)))),
      undo: (file) => token.destroy(parseTokenUri(file)),
    });
  }

  /**
   * Puts the key's PEM into the token and points its row there: the
   * selector, the public key and so the DNS record stay as they are. The file
   * is deleted only when asked (it is the only copy outside the token).
   */
  moveToToken(domain: string, selector: string, options: { removeFile: boolean; step?: Step }): StoredKey {
    const key = this.get(domain, selector);
    if (key.material !== 'file') throw new UserError(`key ${selector} for ${key.domain} is in a token already`, 'see `dkim-relay keys list`');
    if (key.state === 'removed') throw new UserError(`key ${selector} for ${key.domain} is removed`, 'generate a new key in the token instead');
    const token = this.requireToken();
    const pem = this.privatePem(key);
    const uri = tokenUri(token.importPem(pem, tokenLabel(recordName(key.selector, key.domain))));
    const at = (options.step?.at ?? new Date()).toISOString();
    try {
      this.write(() => {
        const { changes } = this.statement(`UPDATE keys SET file = ? WHERE id = ? AND file = ?`).run(uri, key.id, key.file);
        if (changes === 0) throw new StepRaced(`key ${key.id} changed meanwhile`);
        this.insertEvent({
          keyId: key.id,
          domain: key.domain,
          selector: key.selector,
          from: key.state,
          to: key.state,
          at,
          by: options.step?.by ?? 'cli',
          why: options.step?.why ?? `private key moved into token ${token.settings.token}`,
        });
      });
    } catch (err) {
      token.destroy(parseTokenUri(uri));
      throw err;
    }
    if (options.removeFile) rmSync(join(this.dir, key.file), { force: true });
    return this.byId(key.id);
  }

  tokenHealth(): TokenHealth | undefined {
    return this.token?.health();
  }

  probeToken(): void {
    const generation = this.token?.generation;
    this.token?.probe();
    // Regrouped at once so that a token lost or back is told in the log (onKeyProblem) without waiting for mail.
    if (this.token?.generation !== generation) this.activeMap();
  }

  private requireToken(): Pkcs11Token {
    if (!this.token) throw new UserError('no PKCS#11 token is configured', 'set keys.pkcs11 (module, token, pinFile) in the configuration');
    return this.token;
  }

  /** pending/retiring → active; the domain's other active key of the same algorithm retires. */
  activate(domain: string, selector: string, step: Step = {}): StoredKey {
    const key = this.get(domain, selector);
    if (key.state !== 'active' && key.state !== 'revoked' && key.state !== 'removed') this.loadPrivate(key);
    return this.change(key, 'active', step);
  }

  /** active → retiring: stops signing, the record stays published for mail in flight. */
  retire(domain: string, selector: string, step: Step = {}): StoredKey {
    return this.change(this.get(domain, selector), 'retiring', step);
  }

  /** pending/retiring → revoked: the record is published with an empty p=. */
  revoke(domain: string, selector: string, step: Step = {}): StoredKey {
    return this.change(this.get(domain, selector), 'revoked', step);
  }

  /**
   * revoked → removed: the row stays for history, the record is to be
   * withdrawn, the private key file is deleted (after the commit: a crash in
   * between leaves a file that deleteRemovedFiles() takes away later).
   */
  remove(domain: string, selector: string, step: Step = {}): StoredKey {
    const key = this.change(this.get(domain, selector), 'removed', step);
    this.deleteRemovedFiles(step.by ?? 'cli');
    return key;
  }

  /**
   * Applies transitions decided earlier (the rotation planner's), all or
   * none: false when a key is no longer in the state a transition leaves
   * (someone else took the step first), and nothing is changed then.
   */
  applyTransitions(transitions: readonly Transition[]): boolean {
    try {
      this.write(() => this.writeTransitions(transitions));
    } catch (err) {
      if (err instanceof StepRaced) return false;
      throw err;
    }
    const removal = transitions.find((t) => t.to === 'removed');
    if (removal) this.deleteRemovedFiles(removal.by);
    return true;
  }

  /**
   * Deletes the key files of removed keys that are still there, and destroys the
   * token objects of removed token keys not yet known to be gone (each such key
   * is asked about once: its TOKEN_OBJECTS_GONE event ends that); returns what was deleted.
   */
  deleteRemovedFiles(by: Actor = 'scheduler'): string[] {
    const rows = this.query(() =>
      this.statement(`SELECT ${COLUMNS} FROM keys WHERE state = 'removed' AND NOT EXISTS (SELECT 1 FROM events WHERE key_id = keys.id AND why = ?)`).all(
        TOKEN_OBJECTS_GONE,
      ),
    ) as StoredKey[];
    const live = new Set((this.query(() => this.statement(`SELECT file FROM keys WHERE ${LIVE}`).all()) as { file: string }[]).map((r) => r.file));
    const deleted: string[] = [];
    for (const row of rows) {
      if (isTokenUri(row.file)) continue; // its objects are destroyed below
      if (live.has(row.file)) continue; // a new key reusing the selector owns that file now
      const file = join(this.dir, row.file);
      if (!existsSync(file)) continue;
      rmSync(file, { force: true });
      deleted.push(file);
    }
    if (!this.token) return deleted;
    const gone = destroyRemovedTokenObjects(rows, this.token);
    if (gone.length > 0) {
      const at = new Date(this.now());
      this.write(() => {
        const record = this.statement(
          `INSERT INTO events (key_id, domain, selector, from_state, to_state, at, by, why)
             SELECT ?, ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM events WHERE key_id = ? AND why = ?)`,
        );
        for (const { key } of gone) {
          const t = tokenObjectsGone(key, at, by);
          record.run(t.keyId, t.domain, t.selector, t.from, t.to, t.at, t.by, t.why, t.keyId, t.why);
        }
      });
    }
    return [...deleted, ...gone.filter((g) => g.destroyed > 0).map((g) => g.key.file)];
  }

  /** The audit trail, oldest first. */
  history(domain?: string): KeyEvent[] {
    const columns = `id, key_id AS keyId, domain, selector, from_state AS "from", to_state AS "to", at, by, why`;
    return this.query(() =>
      domain
        ? this.statement(`SELECT ${columns} FROM events WHERE domain = ? ORDER BY at, id`).all(normalizeDomain(domain))
        : this.statement(`SELECT ${columns} FROM events ORDER BY at, id`).all(),
    ) as KeyEvent[];
  }

  /** The PKCS#8 PEM of a key, after the permission check. Only `keys export --private` calls this. */
  privatePem(key: StoredKey): string {
    if (key.material === 'pkcs11') {
      throw new UserError(
        `the private key of ${key.selector} for ${key.domain} is in a PKCS#11 token and cannot leave it`,
        'export the public key: leave out --private',
      );
    }
    return readKeyFile(join(this.dir, key.file), recordName(key.selector, key.domain)).text!;
  }

  /**
   * The domain that signs mail from `fromDomain` (in `client`'s chain): the domain itself if it has an
   * active key, else its nearest parent that has one (mail.example.com → example.com).
   */
  signingDomainFor(fromDomain: string, client?: string): string | null {
    return nearestSigningDomain(this.activeMap(), fromDomain, client);
  }

  /**
   * The active keys of the domain's chain (or `client`'s), newest first. Throws the KeyFileError of a key
   * that cannot be loaded: that chain's mail waits, every other chain signs.
   */
  activeKeys(domain: string, client?: string): ActiveKey[] {
    const entry = this.activeMap().get(chainKey(domain, client));
    if (entry?.problems[0]) throw entry.problems[0];
    return entry?.keys ?? [];
  }

  /**
   * Loads every active key, as the daemon does at start-up. A key file others
   * can read stops start-up (someone may have the key); any other problem is
   * told to onKeyProblem and holds back only its own domain. Returns the keys
   * that can sign.
   */
  checkActiveKeys(): StoredKey[] {
    this.activeByChain = null;
    const map = this.activeMap();
    const open = [...map.values()].flatMap((d) => d.problems).find((p) => p.problem === 'readable by others');
    if (open) throw open;
    const usable = new Set([...map.values()].flatMap((d) => d.keys).map((k) => `${k.selector}._domainkey.${k.domain}`));
    return this.list().filter((k) => k.state === 'active' && usable.has(`${k.selector}._domainkey.${k.domain}`));
  }

  /** The TXT value the store publishes at a DNS name (self-check resolves keys here, not in DNS). */
  publishedValue(name: string): string | undefined {
    const lower = name.toLowerCase();
    const at = lower.indexOf('._domainkey.');
    const selector = lower.slice(0, at);
    const domain = lower.slice(at + '._domainkey.'.length).replace(/\.$/, '');
    if (at <= 0 || domain === '') return undefined;
    // Asked once per signature checked: kept until any connection writes (data_version for
    // another's commit, write() for our own), so a revocation is seen at the next check.
    const version = this.query(() => this.statement('PRAGMA data_version').pluck().get()) as number;
    if (version !== this.publishedVersion || this.published.size >= PUBLISHED_CACHE_SIZE) {
      this.published.clear();
      this.publishedVersion = version;
    }
    const cacheKey = `${selector}._domainkey.${domain}`;
    if (this.published.has(cacheKey)) return this.published.get(cacheKey);
    const key = this.query(() => this.statement(`SELECT ${COLUMNS} FROM keys WHERE selector = ? AND domain = ? AND ${LIVE}`).get(selector, domain)) as
      StoredKey | undefined;
    const value = key ? txtValue(key) : undefined;
    this.published.set(cacheKey, value);
    return value;
  }

  /**
   * Chooses the selector and inserts the row in one IMMEDIATE transaction, so
   * two writers (the CLI and the daemon) cannot pick the same one; the file is
   * linked into place only if no file of that name exists.
   */
  private add(
    options: NewKeyOptions,
    material: Pick<KeyMaterial, 'algorithm' | 'bits' | 'publicData'> & Partial<KeyMaterial>,
    placement: Placement = this.filePlacement(material.privatePem!),
  ): StoredKey {
    const domain = normalizeDomain(options.domain);
    const wanted = options.selector === undefined ? undefined : normalizeSelector(options.selector);
    const client = options.client === undefined ? undefined : normalizeClientName(options.client);
    const at = options.step?.at ?? new Date();
    const selector = this.query(() =>
      this.db
        .transaction(() => {
          const existing = this.statement(`SELECT selector, algorithm, state, client FROM keys WHERE domain = ?`).all(domain) as Pick<
            StoredKey,
            'selector' | 'algorithm' | 'state' | 'client'
          >[];
          const chosen = chooseSelector(domain, existing, { selector: wanted, algorithm: material.algorithm, activate: options.activate ?? false, at, client });
          const file = placement.put(chosen, domain);
          const { bits, publicData } = material;
          const now = at.toISOString();
          const state = options.activate ? 'active' : 'pending';
          try {
            const { lastInsertRowid } = this.db
              .prepare(
                `INSERT INTO keys (domain, selector, client, algorithm, bits, state, public_data, fingerprint, file, created_at, activated_at)
                      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
              )
              .run(
                domain,
                chosen,
                client ?? null,
                material.algorithm,
                bits,
                state,
                publicData,
                fingerprint(publicData),
                file,
                now,
                options.activate ? now : null,
              );
            const why = options.step?.why ?? (options.activate ? 'created and activated' : 'created');
            this.insertEvent(creation({ id: Number(lastInsertRowid), domain, selector: chosen, state }, { at, by: options.step?.by ?? 'cli', why }));
          } catch (err) {
            placement.undo(file);
            throw err;
          }
          return chosen;
        })
        .immediate(),
    );
    this.activeByChain = null;
    this.published.clear();
    return this.get(domain, selector);
  }

  private filePlacement(pem: string): Placement {
    return {
      put: (selector, domain) => {
        const file = `${recordName(selector, domain)}.pem`;
        writePrivateFile(join(this.dir, file), pem, this.owner);
        return file;
      },
      undo: (file) => rmSync(join(this.dir, file), { force: true }), // ours: writePrivateFile refused to replace any other
    };
  }

  /** One lifecycle step of `key`, decided on the domain's keys as they are inside the transaction. */
  private change(key: StoredKey, to: KeyState, step: Step): StoredKey {
    const context = { at: step.at ?? new Date(), by: step.by ?? ('cli' as const), why: step.why ?? `keys ${VERB[to]}` };
    this.write(() => {
      const keys = this.statement(`SELECT ${COLUMNS} FROM keys WHERE domain = ?`).all(key.domain) as StoredKey[];
      const decision = decide(keys, key.id, to, context);
      if (!decision.ok) throw new UserError(decision.reason, decision.hint);
      this.writeTransitions(decision.transitions);
    });
    return this.byId(key.id);
  }

  /** Inside a transaction: each UPDATE leaves the state the transition names, or the step raced and rolls back. */
  private writeTransitions(transitions: readonly Transition[]): void {
    for (const t of transitions) {
      if (t.from === null) throw new Error(`a creation event is written by add(), not applied (key ${t.keyId})`);
      if (t.to === 'pending') throw new Error(`no key goes back to pending (key ${t.keyId})`);
      const reset = t.to === 'active' ? ', retired_at = NULL' : ''; // taken back: it retires anew when replaced again
      const { changes } = this.statement(`UPDATE keys SET state = ?, ${STAMP_COLUMN[t.to]} = ?${reset} WHERE id = ? AND state = ?`).run(
        t.to,
        t.at,
        t.keyId,
        t.from,
      );
      if (changes === 0) throw new StepRaced(`key ${t.keyId} is no longer ${t.from}`);
      this.insertEvent(t);
    }
  }

  private insertEvent(t: Transition): void {
    this.statement(`INSERT INTO events (key_id, domain, selector, from_state, to_state, at, by, why) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`).run(
      t.keyId,
      t.domain,
      t.selector,
      t.from,
      t.to,
      t.at,
      t.by,
      t.why,
    );
  }

  private byId(id: number): StoredKey {
    return this.query(() => this.statement(`SELECT ${COLUMNS} FROM keys WHERE id = ?`).get(id)) as StoredKey;
  }

  /**
   * The parsed key, checked through its file every time (mode, owner, link,
   * type); the file is read and parsed again only when it changed.
   */
  private loadPrivate(key: StoredKey): KeyObject | TokenKey {
    if (key.material === 'pkcs11') return this.tokenKey(key);
    const file = join(this.dir, key.file);
    const what = recordName(key.selector, key.domain);
    const cached = this.parsed.get(key.id);
    const { stamp, text } = readKeyFile(file, what, cached?.stamp);
    if (text === null && cached) return cached.key;
    let parsed: KeyObject;
    try {
      parsed = createPrivateKey(text!);
    } catch {
      throw new KeyFileError(
        'damaged',
        `key file ${file} for ${what} is not a readable PEM private key`,
        'restore it from backup, or retire and revoke the key',
      );
    }
    this.parsed.set(key.id, { stamp, key: parsed });
    return parsed;
  }

  private tokenKey(key: StoredKey): TokenKey {
    const ref = parseTokenUri(key.file);
    const what = recordName(key.selector, key.domain);
    if (!this.token || this.token.settings.token !== ref.token) {
      throw new KeyFileError(
        'token unavailable',
        `the private key of ${what} is in PKCS#11 token "${ref.token}", which is not configured`,
        'set keys.pkcs11 to that token',
      );
    }
    return this.token.signingKey(ref, key.algorithm, key.bits, what);
  }

  /**
   * All active keys, loaded in one query and kept until the database changes
   * (our own writes, or another process's, seen through data_version) or
   * recheckMs has passed: the per-message cost is one PRAGMA, whatever From:
   * domains arrive, and a key file chmodded, chowned or replaced while the
   * relay runs is seen at the next load.
   */
  private activeMap(): Map<string, ChainKeys> {
    const version = this.query(() => this.statement('PRAGMA data_version').pluck().get()) as number;
    // A token that went down or came back, or is due another try, changes which keys sign.
    const tokenChanged = this.token !== undefined && (this.token.generation !== this.tokenGeneration || this.token.retryDue());
    if (version !== this.dataVersion || this.now() - this.loadedAt >= this.recheckMs || tokenChanged) {
      this.tokenGeneration = this.token?.generation ?? 0;
      this.dataVersion = version;
      this.activeByChain = null;
    }
    if (!this.activeByChain) {
      const rows = this.query(() =>
        this.statement(`SELECT ${COLUMNS} FROM keys WHERE state = 'active' ORDER BY activated_at DESC, id DESC`).all(),
      ) as StoredKey[];
      const { byChain: map, reported } = groupActiveKeys(rows, (row) => this.loadPrivate(row), this.reported, this.onKeyProblem);
      // A key mended and broken again is told again; keys no longer active are forgotten.
      this.reported = reported;
      const active = new Set(rows.map((r) => r.id));
      for (const id of this.parsed.keys()) if (!active.has(id)) this.parsed.delete(id);
      this.activeByChain = map;
      this.loadedAt = this.now();
    }
    return this.activeByChain;
  }

  private write(change: () => unknown): void {
    this.query(() => this.db.transaction(change).immediate());
    this.activeByChain = null;
    this.published.clear();
  }

  /** Prepared once per SQL text: preparing costs more than most of our queries. */
  private statement(sql: string): Statement {
    let prepared = this.statements.get(sql);
    if (!prepared) this.statements.set(sql, (prepared = this.db.prepare(sql)));
    return prepared;
  }

  private query<T>(run: () => T): T {
    try {
      return run();
    } catch (err) {
      throw explainDatabaseError(err, this.dbFile);
    }
  }
}

/**
 * Written under a temporary name with mode 0600, flushed, then linked to its
 * name: never half a key, and never over an existing key file.
 */
function writePrivateFile(file: string, pem: string, owner: Owner | undefined): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = owner ? createOwnedFile(tmp, owner) : createFileSync(tmp, 0o600);
  try {
    writeSync(fd, pem);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new UserError(
        `key file ${file} already exists but the key store does not know it`,
        'move it away (or import it with `dkim-relay keys import`), then retry',
      );
    }
    throw err;
  } finally {
    unlinkSync(tmp);
  }
}

/** A new file of mode 0600 owned by `owner` from its first octet; its descriptor. */
function createOwnedFile(file: string, owner: Owner): number {
  const fd = createFileSync(file, 0o600);
  try {
    fchownSync(fd, owner.uid, owner.gid);
  } catch (err) {
    closeSync(fd);
    unlinkSync(file);
    throw err;
  }
  return fd;
}

/** For commands that only read: the store (`path`: its directory, or its database) must be there already, and this user able to see it. */
function requireStore(dir: string, path: string): void {
  try {
    lstatSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const where = isAbsolute(dir) ? dir : `${resolve(dir)} (keys.dir ${dir}, relative to the current directory)`;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new UserError(
        `no key store at ${where}`,
        "run the command from the directory the relay runs in, or set keys.dir to the store's absolute path; `dkim-relay keys generate` creates a new store",
      );
    }
    throw new UserError(
      `the key store ${where} cannot be read (${code ?? (err as Error).message})`,
      'run the command as the user the relay runs as, or as root',
    );
  }
}
