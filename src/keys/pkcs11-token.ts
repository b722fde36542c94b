// Signing keys generated (or imported) inside a PKCS#11 token, which never
// leave it: the private key objects are CKA_SENSITIVE and not
// CKA_EXTRACTABLE, and the relay holds only their CKA_ID and the public key.
//
// The relay hashes as always and asks the token for the signature over the
// digest alone. C_Sign runs on the libuv thread pool (pkcs11js's callback
// form), so a slow token never holds up the event loop; logged-in sessions
// are kept in a small pool and reused (PKCS#11 v2.40 §5.6: one operation at a
// time per session, login shared by all the application's sessions).
//
// A token that fails (absent, PIN refused, session lost) marks itself down:
// the domains it signs for wait (4xx) with one line in the log, and the next
// look after TOKEN_RETRY_MS opens the module afresh, so a token that comes back is
// used again without a restart. While the relay runs, probe() looks at a token
// in use that no signature has shown working for TOKEN_PROBE_MS, and tries a
// down one again: a token lost or back while no mail flows is noticed all the same.
import { createRequire } from 'node:module';
import { UserError } from '../common/errors.ts';
import { trimEndOf } from '../message/trim.ts';
import { KeyFileError } from './key-file.ts';
import type { Algorithm } from './key-material.ts';
import {
  CKK_EC_EDWARDS,
  CKM_EC_EDWARDS_KEY_PAIR_GEN,
  CKM_EDDSA,
  ED25519_PARAMS,
  newObjectId,
  privateComponents,
  publicDataOf,
  type TokenObjectRef,
} from './pkcs11-objects.ts';
import { readSecretFile } from './sealing.ts';
import type * as Pkcs11Module from 'pkcs11js';

type Pkcs11 = Pkcs11Module.PKCS11;
type Handle = Buffer;

/** keys.pkcs11 of the configuration. */
export interface TokenSettings {
  module: string;
  token: string;
  pinFile: string;
  newKeys: boolean;
}

/** A private key in a token, ready to sign: what the store hands the signer in place of a KeyObject. */
export interface TokenKey {
  readonly kind: 'pkcs11';
  readonly algorithm: Algorithm;
  readonly bits: number;
  /** The signature over a SHA-256 digest (RSASSA-PKCS1-v1_5 or PureEdDSA, as digest-signature.ts makes them). */
  sign(digest: Uint8Array): Promise<Buffer>;
}

export interface GeneratedInToken {
  ref: TokenObjectRef;
  algorithm: Algorithm;
  bits: number;
  publicData: string;
}

/** How the token is doing, for /readyz, the metrics and the status page. */
export interface TokenHealth {
  /** The token's label. */
  token: string;
  /** unknown: not used yet (connected at the first use of one of its keys). */
  state: 'unknown' | 'up' | 'down';
  /** While down: since when (ms), the first failure of this spell. */
  downSince: number | null;
  /** While down: what is wrong and how to mend it, one line. */
  problem: string | null;
}

export interface TokenOptions {
  now?: () => number;
  /** Told each time the token fails (its error) and when it works again (null). */
  onChange?: (problem: KeyFileError | null) => void;
}

/** How long a token that failed is left alone before the module is opened again. */
export const TOKEN_RETRY_MS = 2000;
/** How long a token in use may go without a signature or a look before probe() looks at it. */
export const TOKEN_PROBE_MS = 5000;
/** How often the relay asks probe() whether a look is due. */
export const TOKEN_PROBE_TICK_MS = 1000;
const MAX_SESSIONS = 4;
const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');

const require = createRequire(import.meta.url);

export class Pkcs11Token {
  readonly settings: TokenSettings;
  readonly #now: () => number;
  readonly #onChange: (problem: KeyFileError | null) => void;
  #lib: Pkcs11 | null = null;
  #pkcs11: typeof Pkcs11Module | null = null;
  #slot: Handle | null = null;
  #idle: Handle[] = [];
  /** Signatures waiting for a session while all MAX_SESSIONS are busy. */
  #waiting: { resolve(session: Handle): void; reject(err: Error): void }[] = [];
  #sessions = 0;
  #inFlight = 0;
  #handles = new Map<string, Handle>();
  /** Why the token cannot be used, and when that was found; null while it works. */
  #down: { error: KeyFileError; at: number } | null = null;
  /** The first failure since the token last worked; null while it works or before its first use. */
  #downSince: number | null = null;
  /** A PIN the token refused: not offered again (tokens lock after a few wrong ones) until the file changes. */
  #refusedPin: string | null = null;
  /** When the token last proved working: connected, a signature made, or a probe answered. */
  #workedAt = -Infinity;
  #closed = false;
  /** Changes whenever the token goes down or comes back: the store reloads its keys then. */
  generation = 0;

  constructor(settings: TokenSettings, options: TokenOptions = {}) {
    this.settings = settings;
    this.#now = options.now ?? Date.now;
    this.#onChange = options.onChange ?? (() => {});
  }

  /** The token, connected at its first use: a token absent now holds back only its own keys. */
  static connectLater(settings: TokenSettings, options?: TokenOptions): Pkcs11Token {
    const token = new Pkcs11Token(settings, options);
    token.#down = { error: tokenError(`token ${settings.token} is not connected yet`, 'see the log line before this one'), at: -Infinity };
    return token;
  }

  get down(): boolean {
    return this.#down !== null;
  }

  health(): TokenHealth {
    const { token } = this.settings;
    if (this.#downSince !== null) return { token, state: 'down', downSince: this.#downSince, problem: this.#down?.error.toLine() ?? null };
    return { token, state: this.#lib ? 'up' : 'unknown', downSince: null, problem: null };
  }

  /** Whether a down token is due another try. */
  retryDue(): boolean {
    return this.#down !== null && this.#now() - this.#down.at >= TOKEN_RETRY_MS;
  }

  /** The key `ref` names, to sign with; KeyFileError (problem 'token unavailable') when the token or the key cannot be used. */
  signingKey(ref: TokenObjectRef, algorithm: Algorithm, bits: number, what: string): TokenKey {
    this.#ready();
    const handle = this.#findPrivate(ref, what);
    return {
      kind: 'pkcs11',
      algorithm,
      bits,
      sign: (digest) => this.#sign(handle, algorithm, digest, what),
    };
  }

  /**
   * Generates the pair inside the token. C_GenerateKeyPair runs on the libuv
   * thread pool: an RSA key takes a token hundreds of milliseconds (SoftHSM:
   * 100–250 ms for 2048 bits), which would stall every SMTP session of the
   * daemon when the rotation scheduler makes the next key.
   */
  async generate(algorithm: Algorithm, bits: number, label: string): Promise<GeneratedInToken> {
    this.#ready();
    const lib = this.#lib!;
    const p = this.#pkcs11!;
    const id = newObjectId();
    const common = [
      { type: p.CKA_TOKEN, value: true },
      { type: p.CKA_ID, value: Buffer.from(id, 'hex') },
      { type: p.CKA_LABEL, value: label },
    ];
    const priv = [...common, ...PRIVATE_FLAGS(p), { type: p.CKA_SIGN, value: true }];
    const pub =
      algorithm === 'rsa'
        ? [
            ...common,
            { type: p.CKA_VERIFY, value: true },
            { type: p.CKA_MODULUS_BITS, value: bits },
            { type: p.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) },
          ]
        : [...common, { type: p.CKA_VERIFY, value: true }, { type: p.CKA_EC_PARAMS, value: ED25519_PARAMS }];
    const mechanism = algorithm === 'rsa' ? p.CKM_RSA_PKCS_KEY_PAIR_GEN : CKM_EC_EDWARDS_KEY_PAIR_GEN;
    const session = await this.#takeSession(label);
    this.#inFlight++;
    try {
      let pair: Pkcs11Module.KeyPair;
      try {
        pair = await lib.C_GenerateKeyPairAsync(session, { mechanism, parameter: undefined }, pub, priv);
      } catch (err) {
        if (this.#lib === lib) this.#release(session);
        throw new UserError(
          `token ${this.settings.token} cannot generate ${algorithm === 'rsa' ? `RSA-${bits}` : 'Ed25519'} keys (${describe(err)})`,
          algorithm === 'ed25519'
            ? 'this token lacks CKM_EC_EDWARDS_KEY_PAIR_GEN: use --algorithm rsa'
            : 'check the token with: pkcs11-tool --module MODULE -M',
        );
      }
      const publicData =
        algorithm === 'ed25519'
          ? publicDataOf('ed25519', { point: attribute(lib, session, pair.publicKey, p.CKA_EC_POINT) })
          : publicDataOf('rsa', {
              modulus: attribute(lib, session, pair.publicKey, p.CKA_MODULUS),
              exponent: attribute(lib, session, pair.publicKey, p.CKA_PUBLIC_EXPONENT),
            });
      if (this.#lib === lib) this.#release(session);
      return { ref: { token: this.settings.token, id }, algorithm, bits: algorithm === 'rsa' ? bits : 256, publicData };
    } finally {
      this.#inFlight--;
    }
  }

  /** Names the key's objects anew (a key is generated before the store has chosen its selector). */
  relabel(ref: TokenObjectRef, label: string): void {
    this.#ready();
    const lib = this.#lib!;
    const p = this.#pkcs11!;
    this.#withSession((session) => {
      for (const object of findAll(lib, session, [{ type: p.CKA_ID, value: Buffer.from(ref.id, 'hex') }])) {
        lib.C_SetAttributeValue(session, object, [{ type: p.CKA_LABEL, value: label }]);
      }
    });
  }

  /** Puts a PEM private key into the token as a non-extractable object; the caller keeps its public half. */
  importPem(pem: string, label: string): TokenObjectRef {
    this.#ready();
    const lib = this.#lib!;
    const p = this.#pkcs11!;
    const { algorithm, values } = privateComponents(pem);
    const id = newObjectId();
    const components =
      algorithm === 'rsa'
        ? [
            { type: p.CKA_KEY_TYPE, value: p.CKK_RSA },
            { type: p.CKA_MODULUS, value: values.modulus },
            { type: p.CKA_PUBLIC_EXPONENT, value: values.publicExponent },
            { type: p.CKA_PRIVATE_EXPONENT, value: values.privateExponent },
            { type: p.CKA_PRIME_1, value: values.prime1 },
            { type: p.CKA_PRIME_2, value: values.prime2 },
            { type: p.CKA_EXPONENT_1, value: values.exponent1 },
            { type: p.CKA_EXPONENT_2, value: values.exponent2 },
            { type: p.CKA_COEFFICIENT, value: values.coefficient },
          ]
        : [
            { type: p.CKA_KEY_TYPE, value: CKK_EC_EDWARDS },
            { type: p.CKA_EC_PARAMS, value: ED25519_PARAMS },
            { type: p.CKA_VALUE, value: values.value },
          ];
    const template = [
      { type: p.CKA_CLASS, value: p.CKO_PRIVATE_KEY },
      { type: p.CKA_TOKEN, value: true },
      { type: p.CKA_ID, value: Buffer.from(id, 'hex') },
      { type: p.CKA_LABEL, value: label },
      { type: p.CKA_SIGN, value: true },
      ...PRIVATE_FLAGS(p),
      ...components,
    ];
    this.#withSession((session) => {
      try {
        lib.C_CreateObject(session, template);
      } catch (err) {
        throw new UserError(
          `token ${this.settings.token} did not take the key (${describe(err)})`,
          'check that the token offers this key type: pkcs11-tool --module MODULE -M',
        );
      } finally {
        for (const v of Object.values(values)) v.fill(0);
      }
    });
    return { token: this.settings.token, id };
  }

  /** Destroys every object of the key (private and public); how many there were. */
  destroy(ref: TokenObjectRef): number {
    this.#ready();
    const lib = this.#lib!;
    const p = this.#pkcs11!;
    this.#handles.delete(ref.id);
    return this.#withSession((session) => {
      const objects = findAll(lib, session, [{ type: p.CKA_ID, value: Buffer.from(ref.id, 'hex') }]);
      for (const object of objects) lib.C_DestroyObject(session, object);
      return objects.length;
    });
  }

  /** One attribute of the key's private object, for tests that prove it cannot be read. */
  readPrivateAttribute(ref: TokenObjectRef, type: number): Buffer {
    this.#ready();
    const handle = this.#findPrivate(ref, ref.id);
    return this.#withSession((session) => attribute(this.#lib!, session, handle, type));
  }

  /**
   * One look at the token when probeDue says so: a token in use is asked
   * for its slot's token information (a cheap call that reaches the token),
   * a down one is connected again. What it finds goes to onChange as a
   * failing signature's would. Synchronous: the call does not sign.
   */
  probe(): void {
    const { state } = this.health();
    if (this.#closed || !probeDue({ state, inFlight: this.#inFlight, workedAt: this.#workedAt, downAt: this.#down?.at ?? -Infinity }, this.#now())) return;
    if (this.#down) {
      this.#reconnect();
      return;
    }
    try {
      this.#lib!.C_GetTokenInfo(this.#slot!);
      this.#workedAt = this.#now();
    } catch (err) {
      this.#fail(err, 'its keys');
    }
  }

  close(): void {
    this.#closed = true;
    this.#disconnect();
  }

  /** Connected, or the KeyFileError saying why not (a down token is tried again once TOKEN_RETRY_MS has passed). */
  #ready(): void {
    if (this.#down && this.retryDue()) this.#reconnect();
    if (this.#down) throw this.#down.error;
  }

  #reconnect(): void {
    if (this.#inFlight > 0) return; // finalizing under a signature in flight would pull the module from under it
    try {
      this.#connect();
      this.#down = null;
      this.#workedAt = this.#now();
      this.generation++;
      if (this.#downSince !== null) {
        this.#downSince = null;
        this.#onChange(null);
      }
    } catch (err) {
      if (!(err instanceof KeyFileError)) {
        this.#fail(err, this.settings.token);
        return;
      }
      this.#down = { error: err, at: this.#now() };
      this.#failedAt(err);
    }
  }

  /** Loads the module, finds the token by label, logs in: any step failing throws a KeyFileError saying how to mend it. */
  #connect(): void {
    this.#disconnect();
    const { module, token, pinFile } = this.settings;
    const p = (this.#pkcs11 ??= require('pkcs11js') as typeof Pkcs11Module);
    const lib = new p.PKCS11();
    try {
      lib.load(module);
    } catch (err) {
      throw tokenError(`the PKCS#11 module ${module} cannot be loaded (${describe(err)})`, 'install the module or correct keys.pkcs11.module');
    }
    // Signatures run on several libuv threads at once: the module must lock (PKCS#11 v2.40 §5.4, CKF_OS_LOCKING_OK).
    lib.C_Initialize({ flags: p.CKF_OS_LOCKING_OK });
    this.#lib = lib;
    const slot = lib.C_GetSlotList(true).find((s) => trimLabel(lib.C_GetTokenInfo(s).label) === token);
    if (!slot) {
      this.#disconnect();
      throw tokenError(
        `no PKCS#11 token labelled "${token}" is present (module ${module})`,
        'connect the token, or correct keys.pkcs11.token (list them: pkcs11-tool --module MODULE -L)',
      );
    }
    this.#slot = slot;
    let pin: string;
    try {
      pin = readSecretFile(pinFile, 'keys.pkcs11.pinFile');
    } catch (err) {
      this.#disconnect();
      throw tokenError((err as UserError).message, (err as UserError).hint ?? 'correct keys.pkcs11.pinFile');
    }
    if (pin === this.#refusedPin) {
      this.#disconnect();
      throw refusedPinError(token, pinFile);
    }
    const session = this.#openSession();
    try {
      lib.C_Login(session, p.CKU_USER, pin);
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (code !== p.CKR_USER_ALREADY_LOGGED_IN) {
        this.#disconnect();
        if (code === p.CKR_PIN_INCORRECT || code === p.CKR_PIN_LEN_RANGE) {
          this.#refusedPin = pin;
          throw refusedPinError(token, pinFile);
        }
        throw tokenError(`token ${token} refused the login (${describe(err)})`, 'check the token and keys.pkcs11.pinFile');
      }
    }
    this.#refusedPin = null;
    this.#idle.push(session);
  }

  #disconnect(): void {
    const lib = this.#lib;
    this.#lib = null;
    this.#slot = null;
    this.#idle = [];
    this.#sessions = 0;
    this.#handles.clear();
    this.#dropWaiting(tokenError(`token ${this.settings.token} was closed`, 'try again'));
    if (!lib) return;
    try {
      lib.C_Finalize();
    } catch {
      // a token already gone: nothing left to close
    }
    try {
      lib.close();
    } catch {
      // as above
    }
  }

  #openSession(): Handle {
    const p = this.#pkcs11!;
    const session = this.#lib!.C_OpenSession(this.#slot!, p.CKF_SERIAL_SESSION | p.CKF_RW_SESSION);
    this.#sessions++;
    return session;
  }

  /** A session of the pool (a new one when all are busy, up to MAX_SESSIONS), given back after `use`. */
  #withSession<T>(use: (session: Handle) => T): T {
    if (!this.#lib) throw new UserError(`token ${this.settings.token} is not connected`, 'see the log line before this one');
    const session = this.#idle.pop() ?? this.#openSession();
    const result = use(session);
    this.#idle.push(session);
    return result;
  }

  #findPrivate(ref: TokenObjectRef, what: string): Handle {
    const known = this.#handles.get(ref.id);
    if (known) return known;
    const p = this.#pkcs11!;
    let found: Handle[];
    try {
      found = this.#withSession((session) =>
        findAll(this.#lib!, session, [
          { type: p.CKA_CLASS, value: p.CKO_PRIVATE_KEY },
          { type: p.CKA_ID, value: Buffer.from(ref.id, 'hex') },
        ]),
      );
    } catch (err) {
      throw this.#fail(err, what);
    }
    if (found.length === 0) {
      throw new KeyFileError(
        'token unavailable',
        `the private key of ${what} is not in token ${ref.token} (CKA_ID ${ref.id})`,
        'restore the token from its backup, or retire and revoke this key and generate a new one',
      );
    }
    this.#handles.set(ref.id, found[0]!);
    return found[0]!;
  }

  async #sign(handle: Handle, algorithm: Algorithm, digest: Uint8Array, what: string): Promise<Buffer> {
    if (digest.length !== 32) throw new Error(`a SHA-256 digest has 32 octets, got ${digest.length}`);
    this.#ready();
    const lib = this.#lib!;
    const p = this.#pkcs11!;
    const data = algorithm === 'rsa' ? Buffer.concat([SHA256_DIGEST_INFO, digest]) : Buffer.from(digest);
    const session = await this.#takeSession(what);
    this.#inFlight++;
    try {
      lib.C_SignInit(session, { mechanism: algorithm === 'rsa' ? p.CKM_RSA_PKCS : CKM_EDDSA, parameter: undefined }, handle);
      const signature = await new Promise<Buffer>((resolve, reject) =>
        lib.C_Sign(session, data, Buffer.alloc(512), (err, out) => (err ? reject(err) : resolve(Buffer.from(out)))),
      );
      if (this.#lib === lib) this.#release(session);
      this.#workedAt = this.#now();
      return signature;
    } catch (err) {
      throw this.#lib === lib ? this.#fail(err, what) : (this.#down?.error ?? this.#fail(err, what));
    } finally {
      this.#inFlight--;
    }
  }

  /** An idle session, a new one while fewer than MAX_SESSIONS are open, else the next one given back. */
  async #takeSession(what: string): Promise<Handle> {
    return (
      this.#idle.pop() ??
      (this.#sessions < MAX_SESSIONS ? this.#openSessionOrFail(what) : await new Promise<Handle>((resolve, reject) => this.#waiting.push({ resolve, reject })))
    );
  }

  #openSessionOrFail(what: string): Handle {
    try {
      return this.#openSession();
    } catch (err) {
      throw this.#fail(err, what);
    }
  }

  /** A session back from signing goes to the first signature waiting for one, else to the pool. */
  #release(session: Handle): void {
    const next = this.#waiting.shift();
    if (next) next.resolve(session);
    else this.#idle.push(session);
  }

  /** The sessions are gone: signatures waiting for one fail with the token's error. */
  #dropWaiting(error: Error): void {
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const w of waiting) w.reject(error);
  }

  /** The token stopped working: down until the next retry, the sessions dropped. */
  #fail(err: unknown, what: string): KeyFileError {
    const error =
      err instanceof KeyFileError
        ? err
        : tokenError(
            `token ${this.settings.token} cannot sign for ${what} (${describe(err)})`,
            'check that the token is connected and its module works (pkcs11-tool --module MODULE -L); signing resumes by itself when it does',
          );
    if (!this.#down) this.generation++;
    this.#down = { error, at: this.#now() };
    this.#idle = [];
    this.#handles.clear();
    this.#dropWaiting(error);
    this.#failedAt(error);
    return error;
  }

  #failedAt(error: KeyFileError): void {
    this.#downSince ??= this.#now();
    this.#onChange(error);
  }
}

/** What probeDue looks at: the token's state, and when it last worked or failed (ms). */
export interface ProbeView {
  state: TokenHealth['state'];
  /** Signatures and key generations under way: they show whether the token works, a probe would only get in their way. */
  inFlight: number;
  workedAt: number;
  downAt: number;
}

/**
 * Whether the token is due a look: a down one once TOKEN_RETRY_MS has passed
 * since it last failed (the look is the retry), one in use once nothing has
 * shown it working for TOKEN_PROBE_MS. A token not used yet is left alone: it
 * is connected at the first use of one of its keys.
 */
export function probeDue(view: ProbeView, now: number): boolean {
  if (view.inFlight > 0 || view.state === 'unknown') return false;
  if (view.state === 'down') return now - view.downAt >= TOKEN_RETRY_MS;
  return now - view.workedAt >= TOKEN_PROBE_MS;
}

/** A token key's label, found again with pkcs11-tool -O: the DNS name of its record. */
export function tokenLabel(what: string): string {
  return `dkim ${what}`;
}

function PRIVATE_FLAGS(p: typeof Pkcs11Module) {
  return [
    { type: p.CKA_PRIVATE, value: true },
    { type: p.CKA_SENSITIVE, value: true },
    { type: p.CKA_EXTRACTABLE, value: false },
  ];
}

function findAll(lib: Pkcs11, session: Handle, template: Pkcs11Module.Template): Handle[] {
  lib.C_FindObjectsInit(session, template);
  try {
    return lib.C_FindObjects(session, 16);
  } finally {
    lib.C_FindObjectsFinal(session);
  }
}

function attribute(lib: Pkcs11, session: Handle, object: Handle, type: number): Buffer {
  const [value] = lib.C_GetAttributeValue(session, object, [{ type }]);
  return value!.value as Buffer;
}

/** PKCS#11 labels are fixed-width, padded with blanks (some modules use NULs). */
function trimLabel(label: string): string {
  return trimEndOf(label, ' \t\0');
}

function tokenError(message: string, hint: string): KeyFileError {
  return new KeyFileError('token unavailable', message, hint);
}

function refusedPinError(token: string, pinFile: string): KeyFileError {
  return tokenError(
    `token ${token} refused the PIN in ${pinFile}`,
    `write the user PIN into ${pinFile} (mode 0600); it is tried again when the file changes, as tokens lock after a few wrong PINs`,
  );
}

/** A PKCS#11 error as its CKR_ name; never the arguments (they may hold a PIN). */
function describe(err: unknown): string {
  if (err instanceof Error) return err.message.split('\n')[0]!;
  return String(err);
}
