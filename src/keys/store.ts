// The key store: PKCS#8 PEM files (0600) beside a SQLite database of metadata,
// in one directory (0700). The daemon and the CLI share it; the daemon notices
// the CLI's changes through SQLite's data_version, without a restart.
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, openSync, readFileSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import { explainDatabaseError, openDatabase, type Db, type Statement } from './database.ts';
import { fingerprint, generateKey, importKey, type Algorithm, type KeyMaterial } from './key-material.ts';
import { nextSelector, normalizeDomain, normalizeSelector, recordName } from './names.ts';
import { assertPrivateFile, ensurePrivateDir } from './permissions.ts';
import { txtValue } from './record.ts';

export type KeyState = 'pending' | 'active' | 'retiring' | 'revoked';

export interface StoredKey {
  id: number;
  domain: string;
  selector: string;
  algorithm: Algorithm;
  bits: number;
  state: KeyState;
  publicData: string;
  fingerprint: string;
  file: string;
  createdAt: string;
  activatedAt: string | null;
  retiredAt: string | null;
  revokedAt: string | null;
}

/** An active key ready to sign: the parsed KeyObject is cached, never re-read per message. */
export interface ActiveKey {
  domain: string;
  selector: string;
  algorithm: Algorithm;
  privateKey: KeyObject;
}

export interface NewKeyOptions {
  domain: string;
  selector?: string;
  /** Activate at once; allowed while the domain has no active key of this algorithm. */
  activate?: boolean;
}

const COLUMNS = `id, domain, selector, algorithm, bits, state, public_data AS publicData, fingerprint, file,
  created_at AS createdAt, activated_at AS activatedAt, retired_at AS retiredAt, revoked_at AS revokedAt`;

export class KeyStore {
  readonly dir: string;
  readonly dbFile: string;
  readonly tightenedDir: boolean;
  private readonly db: Db;
  private dataVersion = -1;
  /** Every active key by domain; null until needed again after a change. */
  private activeByDomain: Map<string, ActiveKey[]> | null = null;
  private readonly parsed = new Map<number, KeyObject>();
  private readonly statements = new Map<string, Statement>();

  private constructor(dir: string, timeoutMs: number) {
    this.dir = dir;
    this.dbFile = join(dir, 'keys.db');
    this.tightenedDir = ensurePrivateDir(dir).tightened;
    this.db = openDatabase(this.dbFile, timeoutMs);
  }

  static open(dir: string, options: { timeoutMs?: number } = {}): KeyStore {
    return new KeyStore(dir, options.timeoutMs ?? 5000);
  }

  close(): void {
    this.db.close();
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
      this.statement(`SELECT ${COLUMNS} FROM keys WHERE domain = ? AND selector = ?`).get(normalizeDomain(domain), normalizeSelector(selector)),
    ) as StoredKey | undefined;
  }

  /** The key or a UserError naming the command that lists what exists. */
  get(domain: string, selector: string): StoredKey {
    const key = this.find(domain, selector);
    if (!key) throw new UserError(`no key ${selector} for ${domain}`, 'see `dkim-relay keys list`');
    return key;
  }

  generate(options: NewKeyOptions & { algorithm: Algorithm; bits?: number }): StoredKey {
    return this.add(options, generateKey(options.algorithm, options.bits));
  }

  import(options: NewKeyOptions & { pem: string; source: string }): StoredKey {
    return this.add(options, importKey(options.pem, options.source));
  }

  /** pending/retiring → active; the domain's other active key of the same algorithm retires. */
  activate(domain: string, selector: string): StoredKey {
    const key = this.get(domain, selector);
    if (key.state === 'active') return key;
    if (key.state === 'revoked') throw new UserError(`key ${selector} for ${domain} is revoked`, 'generate a new key instead');
    this.loadPrivate(key);
    const now = new Date().toISOString();
    this.write(() => {
      this.statement(`UPDATE keys SET state = 'retiring', retired_at = ? WHERE domain = ? AND algorithm = ? AND state = 'active'`).run(now, key.domain, key.algorithm);
      this.statement(`UPDATE keys SET state = 'active', activated_at = ?, retired_at = NULL WHERE id = ?`).run(now, key.id);
    });
    return this.get(domain, selector);
  }

  /** active → retiring: stops signing, the record stays published for mail in flight. */
  retire(domain: string, selector: string): StoredKey {
    const key = this.get(domain, selector);
    if (key.state !== 'active') throw new UserError(`key ${selector} for ${domain} is ${key.state}, not active`, 'only an active key can retire');
    this.write(() => this.statement(`UPDATE keys SET state = 'retiring', retired_at = ? WHERE id = ?`).run(new Date().toISOString(), key.id));
    return this.get(domain, selector);
  }

  /** pending/retiring → revoked: the record is published with an empty p=. */
  revoke(domain: string, selector: string): StoredKey {
    const key = this.get(domain, selector);
    if (key.state === 'active') {
      throw new UserError(`key ${selector} for ${domain} is still signing`, `retire it first: dkim-relay keys retire --domain ${domain} --selector ${selector}`);
    }
    this.write(() => this.statement(`UPDATE keys SET state = 'revoked', revoked_at = ? WHERE id = ?`).run(new Date().toISOString(), key.id));
    return this.get(domain, selector);
  }

  /** The PKCS#8 PEM of a key, after the permission check. Only `keys export --private` calls this. */
  privatePem(key: StoredKey): string {
    const file = join(this.dir, key.file);
    assertPrivateFile(file, `${key.selector}._domainkey.${key.domain}`);
    return readFileSync(file, 'utf8');
  }

  /**
   * The domain that signs mail from `fromDomain`: the domain itself if it has an
   * active key, else its nearest parent that has one (mail.example.com → example.com).
   */
  signingDomainFor(fromDomain: string): string | null {
    const active = this.activeMap();
    let candidate = fromDomain.toLowerCase().replace(/\.$/, '');
    for (let dot = candidate.indexOf('.'); dot > 0; dot = candidate.indexOf('.')) {
      if (active.has(candidate)) return candidate;
      candidate = candidate.slice(dot + 1);
    }
    return null;
  }

  /** The domain's active keys, newest first. */
  activeKeys(domain: string): ActiveKey[] {
    return this.activeMap().get(domain) ?? [];
  }

  /** Loads every active key once, so a missing or world-readable file stops start-up, not a message. */
  checkActiveKeys(): StoredKey[] {
    const active = this.list().filter((k) => k.state === 'active');
    for (const key of active) this.loadPrivate(key);
    return active;
  }

  /** The TXT value the store publishes at a DNS name (self-check resolves keys here, not in DNS). */
  publishedValue(name: string): string | undefined {
    const match = /^(.+?)\._domainkey\.(.+?)\.?$/.exec(name.toLowerCase());
    if (!match) return undefined;
    const key = this.query(() => this.statement(`SELECT ${COLUMNS} FROM keys WHERE selector = ? AND domain = ?`).get(match[1], match[2])) as StoredKey | undefined;
    return key ? txtValue(key) : undefined;
  }

  /**
   * Chooses the selector and inserts the row in one IMMEDIATE transaction, so
   * two writers (the CLI and the daemon) cannot pick the same one; the file is
   * linked into place only if no file of that name exists.
   */
  private add(options: NewKeyOptions, material: KeyMaterial): StoredKey {
    const domain = normalizeDomain(options.domain);
    const wanted = options.selector === undefined ? undefined : normalizeSelector(options.selector);
    const selector = this.query(() =>
      this.db.transaction(() => {
        const existing = this.statement(`SELECT selector, algorithm, state FROM keys WHERE domain = ?`).all(domain) as Pick<StoredKey, 'selector' | 'algorithm' | 'state'>[];
        const taken = new Set(existing.map((k) => k.selector));
        const chosen = wanted ?? nextSelector(taken);
        if (taken.has(chosen)) {
          throw new UserError(`${domain} already has a key with selector ${chosen}`, 'choose another --selector, or leave it out for a fresh one');
        }
        if (options.activate && existing.some((k) => k.state === 'active' && k.algorithm === material.algorithm)) {
          throw new UserError(
            `${domain} already has an active ${material.algorithm} key`,
            'generate without --activate, publish the record, then run `dkim-relay keys activate`',
          );
        }
        const file = `${recordName(chosen, domain)}.pem`;
        writePrivateFile(join(this.dir, file), material.privatePem);
        const now = new Date().toISOString();
        try {
          this.db
            .prepare(`INSERT INTO keys (domain, selector, algorithm, bits, state, public_data, fingerprint, file, created_at, activated_at)
                      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
            .run(domain, chosen, material.algorithm, material.bits, options.activate ? 'active' : 'pending',
              material.publicData, fingerprint(material.publicData), file, now, options.activate ? now : null);
        } catch (err) {
          rmSync(join(this.dir, file), { force: true }); // ours: writePrivateFile refused to replace any other
          throw err;
        }
        return chosen;
      }).immediate(),
    );
    this.activeByDomain = null;
    return this.get(domain, selector);
  }

  private loadPrivate(key: StoredKey): KeyObject {
    let parsed = this.parsed.get(key.id);
    if (!parsed) {
      const file = join(this.dir, key.file);
      const what = `${key.selector}._domainkey.${key.domain}`;
      assertPrivateFile(file, what);
      try {
        parsed = createPrivateKey(readFileSync(file, 'utf8'));
      } catch {
        throw new UserError(`key file ${file} for ${what} is not a readable PEM private key`, 'restore it from backup, or revoke the key');
      }
      this.parsed.set(key.id, parsed);
    }
    return parsed;
  }

  /**
   * All active keys, loaded in one query and kept until the database changes
   * (our own writes, or another process's, seen through data_version): the
   * per-message cost is one PRAGMA, whatever From: domains arrive.
   */
  private activeMap(): Map<string, ActiveKey[]> {
    const version = this.query(() => this.db.pragma('data_version', { simple: true })) as number;
    if (version !== this.dataVersion) {
      this.dataVersion = version;
      this.activeByDomain = null;
    }
    if (!this.activeByDomain) {
      const rows = this.query(() => this.statement(`SELECT ${COLUMNS} FROM keys WHERE state = 'active' ORDER BY activated_at DESC, id DESC`).all()) as StoredKey[];
      const map = new Map<string, ActiveKey[]>();
      for (const row of rows) {
        const key = { domain: row.domain, selector: row.selector, algorithm: row.algorithm, privateKey: this.loadPrivate(row) };
        map.set(row.domain, [...(map.get(row.domain) ?? []), key]);
      }
      this.activeByDomain = map;
    }
    return this.activeByDomain;
  }

  private write(change: () => unknown): void {
    this.query(() => this.db.transaction(change).immediate());
    this.activeByDomain = null;
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
function writePrivateFile(file: string, pem: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'wx', 0o600);
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
      throw new UserError(`key file ${file} already exists but the key store does not know it`, 'move it away (or import it with `dkim-relay keys import`), then retry');
    }
    throw err;
  } finally {
    unlinkSync(tmp);
  }
}
