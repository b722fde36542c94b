// Every fault case, in the order of the "Faults survived" table
// (docs/testing-and-benchmarks.md).
// Each runs in a network and mount namespace of its own (support/driver.ts),
// where loopback is the only network.
import type { CaseContext } from './support/kit.ts';

export interface FaultCase {
  id: string;
  /** The test file that runs it. */
  group: 'dns' | 'smart-host' | 'disk' | 'locks' | 'process' | 'key-store';
  /** The fault, as the table's first column names it. */
  fault: string;
  load(): Promise<(ctx: CaseContext) => Promise<void>>;
}

const from = (file: string, name: string) => async () => ((await import(`./cases/${file}.ts`)) as Record<string, (ctx: CaseContext) => Promise<void>>)[name]!;

export const CASES: FaultCase[] = [
  { id: 'dns-no-route', group: 'dns', fault: 'The system resolver has no route (no `dns.resolvers`)', load: from('dns', 'noRoute') },
  { id: 'dns-silent', group: 'dns', fault: 'The resolver never answers', load: from('dns', 'silent') },
  { id: 'dns-garbage', group: 'dns', fault: 'The resolver answers garbage', load: from('dns', 'garbage') },
  { id: 'dns-truncated', group: 'dns', fault: 'The resolver answers truncated (TC), TCP refused', load: from('dns', 'truncated') },
  {
    id: 'host-reset-after-dot',
    group: 'smart-host',
    fault: 'The smart host resets the connection after the final dot, before replying',
    load: from('smart-host', 'resetAfterDot'),
  },
  { id: 'host-silent', group: 'smart-host', fault: 'The smart host accepts TCP and never greets', load: from('smart-host', 'neverGreets') },
  { id: 'host-421', group: 'smart-host', fault: 'The smart host greets, then answers 421', load: from('smart-host', 'greets421') },
  { id: 'host-slow', group: 'smart-host', fault: 'The smart host answers one byte a second', load: from('smart-host', 'oneByteASecond') },
  {
    id: 'host-drops-8bitmime',
    group: 'smart-host',
    fault: 'The smart host stops announcing 8BITMIME between intake and delivery',
    load: from('smart-host', 'drops8BitMime'),
  },
  { id: 'disk-full-intake', group: 'disk', fault: '`queue.dir` full during intake', load: from('disk', 'fullAtIntake') },
  { id: 'disk-full-delivery', group: 'disk', fault: '`queue.dir` full during delivery bookkeeping', load: from('disk', 'fullAtDelivery') },
  { id: 'queue-db-locked', group: 'locks', fault: "`queue.db` held by another process's write transaction for 10 s", load: from('locks', 'queueDbLocked') },
  { id: 'keys-db-locked', group: 'locks', fault: "`keys.db` held by another process's write transaction for 10 s", load: from('locks', 'keysDbLocked') },
  { id: 'second-serve', group: 'process', fault: 'A second `serve` on the same spool, under load', load: from('process', 'secondServe') },
  { id: 'sigkill-during-reload', group: 'process', fault: 'SIGKILL during a SIGHUP reload', load: from('process', 'killDuringReload') },
  {
    id: 'reload-sequence',
    group: 'process',
    fault: 'Reloads: `queue.dir` changed, then a port in use (fallback), then the file restored',
    load: from('process', 'reloadSequence'),
  },
  {
    id: 'reloads-under-load',
    group: 'process',
    fault: 'Five reloads under load, while clients connect and another process tries to bind the port',
    load: from('process', 'reloadsUnderLoad'),
  },
  {
    id: 'out-of-descriptors',
    group: 'process',
    fault: 'The process out of file descriptors (`ulimit -n 96`, connections held open past it)',
    load: from('process', 'outOfDescriptors'),
  },
  { id: 'key-store-unreadable', group: 'key-store', fault: "The key store's directory made unreadable at run time", load: from('key-store', 'unreadable') },
];
