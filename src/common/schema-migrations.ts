// One migration runner for every versioned schema the relay keeps: the key
// store (SQLite or PostgreSQL) and the queue index (SQLite).
//
// A schema is a list of numbered steps; step n brings version n - 1 to n.
// Each engine stores the version where its transactions see it (SQLite: PRAGMA
// user_version; PostgreSQL: a schema_versions row) and migrates under a lock
// that two processes starting at once both take (SQLite: an IMMEDIATE
// transaction; PostgreSQL: a transaction-scoped advisory lock), reading the
// version again inside it, so the schema is migrated once and a crash leaves
// it at a whole version.
import type Database from 'better-sqlite3';
import type pg from 'pg';

export interface Schema<Step> {
  /** Names the schema in errors and, for PostgreSQL, its row of schema_versions. */
  name: string;
  latest: number;
  /** steps[n] brings version n - 1 to n. */
  steps: Record<number, Step>;
  /** The error for a database a newer release migrated further than this one knows. */
  tooNew: (found: number) => Error;
}

export interface Migrated {
  from: number;
  to: number;
}

/** The step to apply to a database found at `found`, null when it is current; throws when it is newer. */
export function nextStep<Step>(schema: Schema<Step>, found: number): number | null {
  if (found > schema.latest) throw schema.tooNew(found);
  return found === schema.latest ? null : found + 1;
}

export type SqliteStep = string | ((db: Database.Database) => void);

export function sqliteVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

/** Brings a SQLite database to schema.latest, each step in its own IMMEDIATE transaction. */
export function migrateSqlite(db: Database.Database, schema: Schema<SqliteStep>): Migrated {
  const from = sqliteVersion(db);
  nextStep(schema, from);
  for (;;) {
    const applied = db
      .transaction(() => {
        const step = nextStep(schema, sqliteVersion(db)); // another process may have migrated meanwhile
        if (step === null) return false;
        const work = schema.steps[step]!;
        if (typeof work === 'string') db.exec(work);
        else work(db);
        db.pragma(`user_version = ${step}`);
        return true;
      })
      .immediate();
    if (!applied) return { from, to: sqliteVersion(db) };
  }
}

const VERSIONS_TABLE = `CREATE TABLE IF NOT EXISTS schema_versions (name TEXT PRIMARY KEY, version INTEGER NOT NULL)`;

/**
 * Brings a PostgreSQL database to schema.latest in one transaction holding
 * an advisory lock named after the schema: a second relay starting at the
 * same moment waits for the first and then finds the schema current. DDL is
 * transactional in PostgreSQL, so a failed step leaves the version it found.
 */
export async function migratePostgres(client: pg.ClientBase, schema: Schema<string>): Promise<Migrated> {
  await client.query('BEGIN');
  try {
    await client.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [`dkim-relay schema ${schema.name}`]);
    // Under the lock: two first starts cannot both create the table.
    await client.query(VERSIONS_TABLE);
    const found = await client.query<{ version: number }>(`SELECT version FROM schema_versions WHERE name = $1`, [schema.name]);
    const from = found.rows[0]?.version ?? 0;
    let version = from;
    for (let step = nextStep(schema, version); step !== null; step = nextStep(schema, version)) {
      await client.query(schema.steps[step]!);
      version = step;
    }
    await client.query(`INSERT INTO schema_versions (name, version) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET version = excluded.version`, [
      schema.name,
      version,
    ]);
    await client.query('COMMIT');
    return { from, to: version };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}
