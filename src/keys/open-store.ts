// Opens the key store the configuration names: PostgreSQL when keys.database
// is set (a fleet sharing one store), else SQLite in keys.dir.
import type { KeyStore } from './key-store.ts';
import type { PgKeyStore, PgStoreOptions } from './pg-store.ts';
import { readEncryptionKey, readSecretFile } from './sealing.ts';
import { SqliteKeyStore, type StoreOptions } from './store.ts';
import { Pkcs11Token, type TokenOptions, type TokenSettings } from './pkcs11-token.ts';

/** The keys: section of the configuration. */
export interface KeysSettings {
  dir: string;
  database?: string | undefined;
  passwordFile?: string | undefined;
  encryptionKeyFile?: string | undefined;
  pkcs11?: TokenSettings | undefined;
}

export type OpenOptions = StoreOptions &
  Pick<PgStoreOptions, 'onRefreshError' | 'onRefreshed' | 'refreshMs' | 'startUnreachable' | 'listen'> & {
    /** Told when the PKCS#11 token fails and when it works again. */
    onTokenChange?: TokenOptions['onChange'];
  };

export async function openKeyStore(keys: KeysSettings, options: OpenOptions = {}): Promise<KeyStore> {
  if (keys.database === undefined) {
    // Connected at first use: a token that is absent at start holds back only the keys it holds.
    const token = keys.pkcs11 && Pkcs11Token.connectLater(keys.pkcs11, { onChange: options.onTokenChange });
    try {
      return SqliteKeyStore.open(keys.dir, { ...options, token });
    } catch (err) {
      token?.close();
      throw err;
    }
  }
  return openPgStore(keys, keys.database, options);
}

/** The PostgreSQL store at `url`, with the secrets keys.passwordFile and keys.encryptionKeyFile name. */
export async function openPgStore(keys: KeysSettings, url: string, options: OpenOptions = {}): Promise<PgKeyStore> {
  if (keys.encryptionKeyFile === undefined) {
    throw new Error('keys.encryptionKeyFile is required with a PostgreSQL key store'); // the configuration schema refuses it first
  }
  const password = keys.passwordFile === undefined ? undefined : readSecretFile(keys.passwordFile, 'keys.passwordFile');
  const encryptionKey = readEncryptionKey(keys.encryptionKeyFile);
  // Loaded only here: a relay on its own SQLite store never loads the PostgreSQL client.
  const { PgKeyStore } = await import('./pg-store.ts');
  // PostgreSQL holds the records and public keys; the token, the private keys.
  const token = keys.pkcs11 && Pkcs11Token.connectLater(keys.pkcs11, { onChange: options.onTokenChange });
  return PgKeyStore.open({
    token,
    url,
    password,
    encryptionKey,
    dir: keys.dir,
    onKeyProblem: options.onKeyProblem,
    onRefreshError: options.onRefreshError,
    onRefreshed: options.onRefreshed,
    refreshMs: options.refreshMs,
    startUnreachable: options.startUnreachable,
    listen: options.listen,
  });
}
