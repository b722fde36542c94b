// The one place the status report's inputs are gathered, for `dkim-relay
// status` and the running relay's status page and key gauges alike: the keys
// of the store, what DNS served at the last check of each selector, each
// domain's rotation policy with its delegated selectors (as the rotation
// scheduler plans with them, so the record names shown are the ones it
// publishes), the servers that must serve each record, and the active keys
// the relay cannot sign with. Only what differs between the two is passed in:
// DMARC readiness (looked up live, or as last looked up) and the background
// tasks' health (recorded in queue.dir, or the running supervisor's).
import { join } from 'node:path';
import type { TaskHealth } from '../common/background-tasks.ts';
import { recordName } from '../common/names.ts';
import type { Config } from '../config/schema.ts';
import { delegationFor } from '../dns/delegation.ts';
import { configuredNameservers, formatNameserver } from '../dns/nameserver.ts';
import type { ReadinessResult } from '../dns/readiness-lookup.ts';
import { KeyFileError } from '../keys/key-file.ts';
import { parseTokenUri } from '../keys/pkcs11-objects.ts';
import type { StoredKey } from '../keys/store.ts';
import type { KeyStore } from '../keys/key-store.ts';
import type { PgKeyStore } from '../keys/pg-store.ts';
import type { DnsObservation } from '../rotation/observation.ts';
import type { PlanKey } from '../rotation/plan.ts';
import { policyFor, type RotationPolicy } from '../rotation/policy.ts';
import { readObservations } from '../rotation/rotation-tables.ts';
import { fleetStatus } from './fleet-status.ts';
import { statusReport, type KeyFileProblem, type KeyHome, type ReceiversInput, type StatusReport } from './status-report.ts';

export interface StatusSources {
  config: Pick<Config, 'rotation' | 'dns'>;
  store: KeyStore;
  now: Date;
  /** Per domain; a domain not in the map was not checked. */
  readiness: ReadonlyMap<string, ReadinessResult>;
  background?: readonly TaskHealth[];
  /** Receivers' aggregate reports over the window (read by the caller: the reports folder is below this one). */
  receivers?: ReceiversInput;
}

export interface GatheredStatus {
  report: StatusReport;
  /** The store's rows, for the dates of each key's past steps. */
  keys: StoredKey[];
}

export function gatherStatus({ config, store, now, readiness, background, receivers }: StatusSources): GatheredStatus {
  const keys = store.list();
  // A shared store keeps them in its database (read at its last look); a relay's own, in keys.db.
  const shared = store.engine === 'postgres' ? (store as PgKeyStore) : undefined;
  const observations = shared ? (shared.observations() as DnsObservation[]) : readObservations(store.dbFile);
  const resolvers = configuredNameservers(config.dns.resolvers).map(formatNameserver);
  const servers = (domain: string) => {
    const ids = new Set(keys.filter((k) => k.domain === domain).map((k) => k.id));
    return [...new Set([...observations.filter((o) => ids.has(o.keyId)).map((o) => o.server), ...resolvers])];
  };
  const report = statusReport({
    now,
    keys: keys as PlanKey[],
    observations,
    policy: (domain) => rotationPolicy(config, domain),
    servers,
    readiness,
    keyProblems: keyProblems(store, keys),
    homes: new Map(keys.map((k) => [k.id, homeOf(store, k)])),
    ...(background ? { background } : {}),
    ...(receivers ? { receivers } : {}),
    ...(shared ? { fleet: fleetStatus({ nodes: shared.fleet(), ...shared.connection(), now }) } : {}),
  });
  return { report, keys };
}

function homeOf(store: KeyStore, key: StoredKey): KeyHome {
  if (key.material === 'pkcs11') return { kind: 'pkcs11', token: parseTokenUri(key.file).token, uri: key.file };
  if (key.material === 'sealed') return { kind: 'sealed' };
  return { kind: 'file', path: join(store.dir, key.file) };
}

/** The domains the report shows: those with a key not yet removed. */
export function reportedDomains(keys: readonly StoredKey[]): string[] {
  return [...new Set(keys.filter((k) => k.state !== 'removed').map((k) => k.domain))];
}

/** A domain's policy as the rotation scheduler plans with it, delegated selectors included. */
function rotationPolicy(config: Pick<Config, 'rotation' | 'dns'>, domain: string): RotationPolicy {
  return policyFor(config.rotation, domain, delegationFor(config.dns.delegation, domain));
}

/**
 * The active keys the relay cannot sign with, as loading each chain's keys
 * finds them (the first of each chain: its mail waits until it is mended).
 * The error names the key file's key by its record name.
 */
function keyProblems(store: KeyStore, keys: readonly StoredKey[]): KeyFileProblem[] {
  const problems: KeyFileProblem[] = [];
  const chains = new Map(keys.filter((k) => k.state === 'active').map((k) => [`${k.domain} ${k.client ?? ''}`, k]));
  for (const { domain, client } of chains.values()) {
    try {
      store.activeKeys(domain, client ?? undefined);
    } catch (err) {
      if (!(err instanceof KeyFileError)) throw err;
      const key = keys.find((k) => k.domain === domain && k.state === 'active' && err.message.includes(recordName(k.selector, k.domain)));
      problems.push({ domain, selector: key?.selector ?? '', line: err.toLine() });
    }
  }
  return problems;
}
