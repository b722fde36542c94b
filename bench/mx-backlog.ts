// Direct delivery of a backlog: MESSAGES messages to 20 destinations, each
// its own exchanger on 127.0.0.(10 + n) answered by a loopback DNS server,
// 20 at a time as the queue manager hands them over (default limits:
// maxConnections 20, maxConnectionsPerDomain 3), the destinations in turn.
// Prints the connections each exchanger was opened, and per minute.
//
//   node bench/mx-backlog.ts [ROOT] [MESSAGES]
//
// ROOT: the checkout whose src/delivery/mx-upstream.ts is measured (default: this one).
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import { startMxDnsServer, type RoutingRecord } from '../test/helpers/mx-dns-server.ts';
import { startMxSinks } from '../test/helpers/mx-sinks.ts';
import { benchMessage } from './message.ts';

const root = resolve(process.argv[2] ?? join(import.meta.dirname, '..'));
const count = Number(process.argv[3] ?? 2000);
const DESTINATIONS = 20;
const IN_FLIGHT = 20;

interface Upstream {
  deliver(envelope: { from: string; to: string[] }, octets: unknown): Promise<{ code: number; text: string }>;
  close(): Promise<void>;
}
const { MxUpstream } = (await import(join(root, 'src/delivery/mx-upstream.ts'))) as { MxUpstream: new (c: unknown, l: unknown) => Upstream };
const { configSchema } = (await import(join(root, 'src/config/schema.ts'))) as { configSchema: { parse(x: unknown): { delivery: { upstream: unknown } } } };
const { bufferOctets } = (await import(join(root, 'src/message/octets.ts'))) as { bufferOctets(b: Buffer): unknown };

const records: Record<string, RoutingRecord[]> = {};
const specs = Array.from({ length: DESTINATIONS }, (_, n) => {
  records[`d${n}.test`] = [{ type: 'MX', preference: 10, exchange: `mx.d${n}.test` }];
  records[`mx.d${n}.test`] = [{ type: 'A', data: `127.0.0.${10 + n}` }];
  return { address: `127.0.0.${10 + n}` };
});
const dns = await startMxDnsServer(records);
const sinks = await startMxSinks(specs);
const config = configSchema.parse({
  delivery: { upstream: { type: 'mx', heloName: 'relay.test', timeoutSeconds: 30, allowNetworks: ['127.0.0.0/8'], port: sinks.port, resolver: [dns.address] } },
}).delivery.upstream;
const upstream = new MxUpstream(config, pino({ level: 'silent' }));
const octets = bufferOctets(benchMessage(4096));

const started = performance.now();
let next = 0;
let failed = 0;
await Promise.all(
  Array.from({ length: IN_FLIGHT }, async () => {
    while (next < count) {
      const i = next++;
      const reply = await upstream.deliver({ from: 'payroll@example.com', to: [`user${i}@d${i % DESTINATIONS}.test`] }, octets);
      if (reply.code !== 250) failed++;
    }
  }),
);
const minutes = (performance.now() - started) / 60_000;
await upstream.close();
const opened = [...sinks.sinks.values()].map((sink) => sink.connections);
const peak = Math.max(...[...sinks.sinks.values()].map((sink) => sink.peakConnections));
console.log(
  `${count} messages to ${DESTINATIONS} destinations in ${(minutes * 60).toFixed(1)} s (${failed} not delivered): ` +
    `connections opened per destination ${Math.min(...opened)}–${Math.max(...opened)} (at most ${(Math.max(...opened) / Math.max(minutes, 1)).toFixed(1)} per destination per minute), ` +
    `at most ${peak} at once to one destination`,
);
await sinks.close();
await dns.close();
