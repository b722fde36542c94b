// What the HTTP listener shows of a running relay, read when asked: the facts
// behind /healthz, whether it is ready, and the status report of its key store
// (the same report as `dkim-relay status`, with DMARC readiness as last
// looked up instead of live).
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { closeSync, rmSync, statfsSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/schema.ts';
import { createFileSync } from '../common/file-create.ts';
import { KeyFileError } from '../keys/key-file.ts';
import { chainKey, chainName } from '../keys/store-rules.ts';
import type { KeyStore } from '../keys/key-store.ts';
import type { PgKeyStore, StoreConnection } from '../keys/pg-store.ts';
import { decideHealth, signingDomains, type Health, type HealthFacts, type Readiness } from '../observability/health.ts';
import type { TaskHealth } from '../common/background-tasks.ts';
import type { RelayMetrics } from '../observability/metrics.ts';
import { gatherStatus, type GatheredStatus } from '../observability/status-sources.ts';
import type { ReceiversInput } from '../observability/status-report.ts';
import { readEvidence } from '../reports/evidence.ts';
import type { KeptReportStores } from '../reports/kept-report-stores.ts';

export interface ViewDeps {
  config: Config;
  store: KeyStore;
  /** The relay's report store, kept open for its life. */
  reports: KeptReportStores;
  metrics: RelayMetrics;
  /** Whether every SMTP listener accepts connections. */
  listening: () => boolean;
  /** The background tasks that failed since the relay started. */
  background?: () => TaskHealth[];
  now?: () => Date;
}

export class RelayView {
  readonly metrics: RelayMetrics;
  private readonly deps: ViewDeps;
  private state: Readiness = 'starting';

  constructor(deps: ViewDeps) {
    this.deps = deps;
    this.metrics = deps.metrics;
  }

  started(): void {
    this.state = 'ready';
  }

  draining(): void {
    this.state = 'draining';
  }

  readiness(): Readiness {
    return this.state;
  }

  background(): TaskHealth[] {
    return this.deps.background?.() ?? [];
  }

  health(): Health {
    const { config, store } = this.deps;
    const keyStore = store.engine === 'postgres' ? sharedStoreAnswers((store as PgKeyStore).connection()) : storeOpens(store.dbFile);
    let domains: HealthFacts['domains'] = [];
    if (keyStore.ok) {
      // A fresh look at every active key file, not the copy cached for signing.
      try {
        store.checkActiveKeys();
      } catch (err) {
        if (!(err instanceof KeyFileError)) throw err; // a key file open to others: told per domain below
      }
      const configured = [...Object.keys(config.signing.domains), ...Object.keys(config.rotation.domains), ...(config.demo ? [config.demo.domain] : [])];
      const keys = store.list();
      // The domains' own chains must sign; a client's chain is checked while it has an active key (revoked on purpose, it has none).
      const chains = [
        ...signingDomains(
          configured,
          keys.filter((k) => k.client === null),
        ).map((domain) => ({ domain, client: undefined as string | undefined })),
        ...new Map(
          keys.filter((k) => k.client !== null && k.state === 'active').map((k) => [chainKey(k.domain, k.client), { domain: k.domain, client: k.client! }]),
        ).values(),
      ];
      domains = chains.map(({ domain, client }) => {
        const name = chainName(domain, client);
        try {
          return { domain: name, usableKeys: store.activeKeys(domain, client).length };
        } catch (err) {
          if (!(err instanceof KeyFileError)) throw err;
          return { domain: name, usableKeys: 0, problem: err.toLine() };
        }
      });
    }
    return decideHealth({ listening: this.deps.listening(), spool: spoolWritable(config.queue.dir, config.listen.maxMessageSize), keyStore, domains });
  }

  /** The status report, as `dkim-relay status --no-dns` builds it, with the DMARC readiness last looked up and the reports as last read. */
  snapshot(): GatheredStatus {
    const { config, store } = this.deps;
    const receivers = this.metrics.receivers();
    return gatherStatus({
      config,
      store,
      now: this.deps.now?.() ?? new Date(),
      readiness: this.metrics.lastReadiness(),
      background: this.background(),
      ...(receivers ? { receivers } : {}),
    });
  }

  /** Receivers' aggregate reports over reports.windowDays, read (read-only) from the key store's database, whichever its engine. */
  async readReceivers(): Promise<ReceiversInput> {
    const { config, store } = this.deps;
    const days = config.reports.windowDays;
    return this.deps.reports.use('read-only', async (reports) => ({
      days,
      evidence: await readEvidence(reports, store, days, (this.deps.now?.() ?? new Date()).getTime()),
    }));
  }
}

/** A shared store away does not stop signing with the keys held; with none loaded yet, mail waits (451). */
function sharedStoreAnswers(c: StoreConnection): HealthFacts['keyStore'] {
  if (c.unreachableSince === null) {
    const changes = c.listening ? 'changes pushed' : 'changes polled (not subscribed yet)';
    return { ok: true, note: `answers; key generation ${c.generation} loaded at ${c.loadedAt}; ${changes}` };
  }
  if (c.loadedAt === null) return { ok: false, error: `unreachable since ${c.unreachableSince}; no keys loaded yet: mail is deferred (451)` };
  return { ok: true, note: `unreachable since ${c.unreachableSince}; signing with key generation ${c.generation} loaded at ${c.loadedAt}` };
}

/** The key store's database opens, as a new connection would open it, and can be read. */
function storeOpens(dbFile: string): HealthFacts['keyStore'] {
  let db: Database.Database | undefined;
  try {
    db = new Database(dbFile, { readonly: true, fileMustExist: true, timeout: 2000 });
    db.prepare('SELECT count(*) FROM keys').get();
    return { ok: true };
  } catch (err) {
    return { ok: false, error: `key store ${dbFile} does not open: ${(err as Error).message}` };
  } finally {
    db?.close();
  }
}

/** Probe data written to the spool: a file system with no room for it is full, though it may still create empty files. */
const PROBE = Buffer.alloc(4096, 0x2e);

/**
 * Writes and removes a file with data in the spool: the only sure test, since
 * root may write where the mode says no, and a full disk still creates empty
 * files. Then the space left, for a disk that is not full yet but cannot take
 * one message of the largest size.
 */
function spoolWritable(dir: string, neededBytes: number): HealthFacts['spool'] {
  try {
    statSync(dir);
  } catch {
    return { exists: false };
  }
  const probe = join(dir, `.healthz-${randomBytes(6).toString('hex')}`);
  try {
    const fd = createFileSync(probe, 0o600);
    try {
      writeSync(fd, PROBE);
    } finally {
      closeSync(fd);
      rmSync(probe, { force: true });
    }
    const fs = statfsSync(dir);
    return { exists: true, writable: true, freeBytes: fs.bavail * fs.bsize, neededBytes };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    return { exists: true, writable: false, code, error: `spool ${dir} is not writable (${code === 'error' ? (err as Error).message : code})` };
  }
}
