// What every part of the relay knows of the key store, whichever engine
// keeps it: SQLite beside PEM files in keys.dir (one relay, the default), or
// PostgreSQL shared by a fleet of relays (private keys sealed in the rows).
//
// Reads are synchronous and never wait on a network: signing asks for the
// active keys of a domain per message. The PostgreSQL engine serves them from
// the key set it holds in memory (loaded at start, reloaded after each change).
// Writes may be asynchronous (`Awaitable`): SQLite completes them before
// returning, PostgreSQL returns a promise; callers always await them.
import type { KeyObject } from 'node:crypto';
import type { Algorithm } from './key-material.ts';
import type { KeyFileProblemKind } from './key-file.ts';
import type { Fence } from './fence.ts';
import type { Actor, KeyState, Transition } from './lifecycle.ts';
import type { TokenHealth, TokenKey } from './pkcs11-token.ts';

export type { KeyState };

export type Awaitable<T> = T | Promise<T>;

/**
 * Where a key's private half lives: a PKCS#8 PEM file in keys.dir, or sealed
 * (AES-256-GCM under the key-encryption key) in the database row, or in a
 * PKCS#11 token it never leaves.
 */
export type MaterialPlace = 'file' | 'sealed' | 'pkcs11';

export interface StoredKey {
  id: number;
  domain: string;
  selector: string;
  /** The client of the relay whose chain the key is in (clients[].name); null: the domain's own chain. */
  client: string | null;
  algorithm: Algorithm;
  bits: number;
  state: KeyState;
  publicData: string;
  fingerprint: string;
  material: MaterialPlace;
  /** The PEM file's name in keys.dir (material 'file'); for sealed keys, the name it would have; for token keys, their RFC 7512 URI. */
  file: string;
  createdAt: string;
  activatedAt: string | null;
  retiredAt: string | null;
  revokedAt: string | null;
  removedAt: string | null;
}

/** Who takes a step, when and why: written to the events table with it. Default: the CLI, now. */
export interface Step {
  by?: Actor;
  why?: string;
  at?: Date;
  /** The rotation lease this step is taken under: refused (Fenced) when a newer leader holds it. */
  fence?: Fence;
}

/** One row of the events table: a transition as it was applied. */
export interface KeyEvent extends Transition {
  id: number;
}

/** An active key ready to sign: the parsed KeyObject is cached, never re-read per message. */
export interface ActiveKey {
  domain: string;
  selector: string;
  algorithm: Algorithm;
  privateKey: KeyObject | TokenKey;
}

/** An active key that cannot be used: its domain waits (4xx), the others sign on. */
export interface KeyProblem {
  domain: string;
  selector: string;
  problem: KeyFileProblemKind;
  /** What is wrong and how to mend it (for the log, never for SMTP replies). */
  line: string;
}

export interface NewKeyOptions {
  domain: string;
  /** A key of this client's chain (clients[].name): its own selectors, signing only that client's mail. */
  client?: string;
  selector?: string;
  /** Activate at once; allowed while the chain has no active key of this algorithm. */
  activate?: boolean;
  /** Generate or import into the PKCS#11 token (keys.pkcs11); default: keys.pkcs11.newKeys for generated keys. */
  inToken?: boolean;
  step?: Step;
}

export interface KeyStore {
  readonly engine: 'sqlite' | 'postgres';
  /** Where the store is, for messages: its directory, or the database URL without any password. */
  readonly location: string;
  /** keys.dir: the key files (SQLite engine) and the local files every engine keeps there. */
  readonly dir: string;
  /** The SQLite database holding the metadata (the rotation scheduler's tables live there too). */
  readonly dbFile: string;
  /** Key files the directory held while it was open to others (SQLite engine; 0 otherwise). */
  readonly exposedKeyFiles: number;

  list(domain?: string): StoredKey[];
  find(domain: string, selector: string): StoredKey | undefined;
  /** The key or a UserError naming the command that lists what exists. */
  get(domain: string, selector: string): StoredKey;
  /** The audit trail, oldest first. */
  history(domain?: string): KeyEvent[];
  /** The PKCS#8 PEM of a key. Only `keys export --private`, `keys migrate` and revealing call this. */
  privatePem(key: StoredKey): string;
  /** The domain that signs mail from `fromDomain`: itself, or its nearest parent with an active key (in `client`'s chain, when given). */
  signingDomainFor(fromDomain: string, client?: string): string | null;
  /** The active keys of the domain's own chain (or `client`'s), newest first; throws the KeyFileError of one that cannot be used. */
  activeKeys(domain: string, client?: string): ActiveKey[];
  /** Loads every active key afresh; returns those that can sign. */
  checkActiveKeys(): StoredKey[];
  /** The TXT value the store publishes at a DNS name. */
  publishedValue(name: string): string | undefined;
  /** Deletes the private material of removed keys still present (`by`: who, for the events it writes); returns what was deleted. */
  deleteRemovedFiles(by?: Actor): string[];

  generate(options: NewKeyOptions & { algorithm: Algorithm; bits?: number }): Awaitable<StoredKey>;
  import(options: NewKeyOptions & { pem: string; source: string }): Awaitable<StoredKey>;
  activate(domain: string, selector: string, step?: Step): Awaitable<StoredKey>;
  retire(domain: string, selector: string, step?: Step): Awaitable<StoredKey>;
  revoke(domain: string, selector: string, step?: Step): Awaitable<StoredKey>;
  remove(domain: string, selector: string, step?: Step): Awaitable<StoredKey>;
  /** Transitions decided earlier, all or none: false when one no longer applies (someone else took it). */
  applyTransitions(transitions: readonly Transition[], fence?: Fence): Awaitable<boolean>;
  /** Moves a key's private half from its PEM file into the PKCS#11 token; the file is deleted only with removeFile (engines without a token leave this out). */
  /** The PKCS#11 token of keys.pkcs11, when one is configured. */
  tokenHealth?(): TokenHealth | undefined;
  /** Looks at the PKCS#11 token when a look is due (Pkcs11Token.probe), so that a token lost or back while no mail flows is noticed. */
  probeToken?(): void;
  moveToToken?(domain: string, selector: string, options: { removeFile: boolean; step?: Step }): Awaitable<StoredKey>;
  close(): Awaitable<void>;
}
