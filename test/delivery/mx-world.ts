// A small mail world on loopback for direct-delivery tests: a DNS server
// with MX and address records, receiving hosts on 127.0.0.x sharing one
// port, and an `mx` upstream configured to use both.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { configSchema } from '../../src/config/schema.ts';
import { MxUpstream, type MxConfig, type MxOptions } from '../../src/delivery/mx-upstream.ts';
import { startMxDnsServer, type MxDnsServer, type RoutingRecord } from '../helpers/mx-dns-server.ts';
import { startMxSinks, type MxSinks, type SinkSpec } from '../helpers/mx-sinks.ts';

export interface MxWorld {
  dns: MxDnsServer;
  sinks: MxSinks;
  upstream: MxUpstream;
  /** The upstream's log lines. */
  lines: Record<string, unknown>[];
}

export const MX_HELO = 'relay.test';

/** The receiving hosts are on loopback, where the relay delivers only when allowNetworks says so. */
export const LOOPBACK_ALLOWED = ['127.0.0.0/8'];

export function mxConfig(overrides: Record<string, unknown>): MxConfig {
  return configSchema.parse({ delivery: { upstream: { type: 'mx', heloName: MX_HELO, timeoutSeconds: 5, allowNetworks: LOOPBACK_ALLOWED, ...overrides } } })
    .delivery.upstream as MxConfig;
}

export async function withMxWorld(
  records: Record<string, RoutingRecord[]>,
  sinks: SinkSpec[],
  run: (world: MxWorld) => Promise<void>,
  settings: Record<string, unknown> = {},
  /** Or a function of the receiving hosts, e.g. to make one of them the relay's own listener. */
  options: MxOptions | ((sinks: MxSinks) => MxOptions) = {},
): Promise<void> {
  const dns = await startMxDnsServer(records);
  const started = await startMxSinks(sinks);
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk, _e, cb) {
        lines.push(JSON.parse(String(chunk)));
        cb();
      },
    }),
  );
  const upstream = new MxUpstream(
    mxConfig({ port: started.port, resolver: [dns.address], ...settings }),
    logger,
    typeof options === 'function' ? options(started) : options,
  );
  try {
    await run({ dns, sinks: started, upstream, lines });
  } finally {
    await upstream.close();
    await started.close();
    await dns.close();
  }
}

export const mx = (preference: number, exchange: string): RoutingRecord => ({ type: 'MX', preference, exchange });
export const a = (address: string): RoutingRecord => ({ type: 'A', data: address });

export const PLAIN_MESSAGE = Buffer.from(
  [
    'From: Payroll <payroll@example.com>',
    'To: Alice <alice@a.test>',
    'Subject: Your payslip',
    'Date: Sun, 22 Nov 2026 10:00:00 +0000',
    'Message-ID: <p1@example.com>',
    '',
    'Hello',
    '',
  ].join('\r\n'),
);
