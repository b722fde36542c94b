// Signing throughput with each key store: the relay's own SQLite store beside
// the PostgreSQL store a fleet shares, holding the same keys (copied over as
// `keys migrate` does). Each message asks the store for the domain's active
// keys and signs with them, as the pipeline does. Both stores keep the parsed
// keys in memory, so the figures should match: the PostgreSQL store is opened
// as `serve` opens it (LISTEN connection, a look every 5 s), so its background
// work is counted too. The machine is shared: the two are measured in
// alternation, round after round, and the medians reported.
// Run: node bench/store-signing.ts   (needs the Debian package postgresql; BENCH_ROUNDS, BENCH_SECONDS)
import { join } from 'node:path';
import { configSchema } from '../src/config/schema.ts';
import type { KeyStore } from '../src/keys/key-store.ts';
import { openPgStore } from '../src/keys/open-store.ts';
import { copySqliteStore } from '../src/keys/store-copy.ts';
import { SqliteKeyStore } from '../src/keys/store.ts';
import { signOptionsFor } from '../src/pipeline/signing-policy.ts';
import { signMessage } from '../src/signing/signer.ts';
import { kekFile } from '../test/keys/postgres/support.ts';
import { startPgCluster } from '../test/keys/postgres/pg-cluster.ts';
import { tempDir } from '../test/helpers/tmp.ts';
import { load1, machine } from './machine.ts';
import { benchMessage, DOMAIN } from './message.ts';
import { median } from './stats.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 1);
const ED_DOMAIN = 'example.org';

/** Operations per second of `work` over `seconds`. */
function rate(work: () => unknown, seconds: number): number {
  const start = performance.now();
  const end = start + seconds * 1000;
  let n = 0;
  while (performance.now() < end) {
    work();
    n++;
  }
  return n / ((performance.now() - start) / 1000);
}

/** Median rates of the two stores, measured in alternation (each goes first every other round). */
function compare(work: (store: KeyStore) => () => unknown, stores: { sqlite: KeyStore; postgres: KeyStore }): { sqlite: number; postgres: number } {
  const rates = { sqlite: [] as number[], postgres: [] as number[] };
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? (['sqlite', 'postgres'] as const) : (['postgres', 'sqlite'] as const);
    for (const which of order) rates[which].push(rate(work(stores[which]), SECONDS));
  }
  return { sqlite: median(rates.sqlite), postgres: median(rates.postgres) };
}

const host = machine();
const loadBefore = load1();
const dir = tempDir('dkim-relay-bench-store-');
const sqlite = SqliteKeyStore.open(join(dir, 'keys'));
sqlite.generate({ domain: DOMAIN, selector: 'rsa1', algorithm: 'rsa', bits: 2048, activate: true });
sqlite.generate({ domain: ED_DOMAIN, selector: 'ed1', algorithm: 'ed25519', activate: true });
const cluster = await startPgCluster();
try {
  const url = await cluster.createDatabase('bench');
  const pg = await openPgStore({ dir: join(dir, 'pg-keys'), encryptionKeyFile: kekFile(dir) }, url, { listen: true });
  try {
    await copySqliteStore(sqlite, pg);
    await pg.refresh();
    const message = benchMessage(4000);
    console.log(
      `store signing, ${new Date().toISOString()}: ${host.cores} × ${host.cpu}, Node ${host.node}; load average ${loadBefore.toFixed(2)}; ${ROUNDS} rounds of ${SECONDS} s each, 4 KB messages`,
    );
    const stores = { sqlite, postgres: pg };
    const lookups = compare((store) => () => store.activeKeys(DOMAIN), stores);
    console.log(
      `active keys looked up: SQLite store ${(lookups.sqlite / 1000).toFixed(0)}k/s, PostgreSQL store ${(lookups.postgres / 1000).toFixed(0)}k/s (from memory; SQLite asks its data_version each time)`,
    );
    for (const [what, domain] of [
      ['RSA-2048', DOMAIN],
      ['Ed25519', ED_DOMAIN],
    ] as const) {
      const options = signOptionsFor(configSchema.parse({}).signing, domain);
      const m = compare((store) => () => signMessage(message, store.activeKeys(domain), options), stores);
      console.log(
        `${what}: SQLite store ${m.sqlite.toFixed(0)} msg/s, PostgreSQL store ${m.postgres.toFixed(0)} msg/s (PostgreSQL/SQLite ${(m.postgres / m.sqlite).toFixed(2)})`,
      );
    }
    console.log(`load average after: ${load1().toFixed(2)}`);
  } finally {
    await pg.close();
  }
} finally {
  sqlite.close();
  await cluster.stop();
}
