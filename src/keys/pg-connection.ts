// Connecting to the fleet's PostgreSQL key store. The password comes from
// keys.passwordFile, never from the URL in the configuration, and no message
// shows it: `location` is the URL as configured, which holds none (see pg-url.ts).
import pg from 'pg';
import { UserError } from '../common/errors.ts';

export interface PgTarget {
  /** postgres:// or postgresql:// URL without a password (?sslmode=, ?host=/socket/dir allowed). */
  url: string;
  /** The password, read from keys.passwordFile. */
  password?: string | undefined;
}

export function createPool(target: PgTarget, max = 4): pg.Pool {
  const url = new URL(target.url);
  if (target.password !== undefined) url.password = encodeURIComponent(target.password);
  const pool = new pg.Pool({ connectionString: url.toString(), max, connectionTimeoutMillis: 10_000, idleTimeoutMillis: 30_000 });
  // An idle connection the server closed is replaced at the next use; without a listener it would end the process.
  pool.on('error', () => {});
  return pool;
}

/** One line for a connection or query failure, naming the store but never a password. */
export function explainPgError(err: unknown, location: string, password?: string): Error {
  if (err instanceof UserError) return err;
  const raw = err instanceof Error ? err.message : String(err);
  const message = password ? raw.split(password).join('***') : raw;
  const code = (err as { code?: string }).code ?? '';
  if (code === '23505' || code === '40001' || code === '40P01') {
    return new UserError('another relay changed the key store at the same moment', 'run the command again');
  }
  if (code === '28P01' || code === '28000') {
    return new UserError(`the key store ${location} refused the login (${message})`, 'check the user in keys.database and the password in keys.passwordFile');
  }
  if (code === '3D000') return new UserError(`the key store ${location} does not exist (${message})`, 'create the database, or correct keys.database');
  if (['ECONNREFUSED', 'ENOENT', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND'].includes(code) || /timeout/i.test(message)) {
    return new UserError(`cannot reach the key store ${location} (${message})`, 'check that PostgreSQL runs and keys.database names its host and port');
  }
  return new UserError(`key store ${location}: ${message}`, 'see the PostgreSQL server log for more');
}
