// The smart-host client alone: CPU time of this process per message
// delivered by the `smtp` upstream to a counting sink in another process
// (so the sink's work is not counted), 20 messages in flight, 4 KiB and
// 100 KiB. CPU time per message hardly depends on how busy the machine is,
// which wall-clock rates here do.
//
//   node bench/smart-host-client.ts [ROOT] [MESSAGES]
//
// ROOT: the checkout whose src/delivery/smtp-upstream.ts is measured (default:
// this one), so that two builds can be measured in turns on the same machine.
// BENCH_CPU_PROF=<dir>: also write a V8 CPU profile of the client there.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join, resolve } from 'node:path';
import { Session } from 'node:inspector/promises';
import { mkdirSync, writeFileSync } from 'node:fs';
import { pino } from 'pino';
import { benchMessage } from './message.ts';

const root = resolve(process.argv[2] ?? join(import.meta.dirname, '..'));
const count = Number(process.argv[3] ?? 3000);
const IN_FLIGHT = 20;

interface Upstream {
  ready(): Promise<void>;
  deliver(envelope: { from: string; to: string[] }, octets: unknown): Promise<{ code: number; text: string }>;
  close(): Promise<void>;
}

const { SmtpUpstream } = (await import(join(root, 'src/delivery/smtp-upstream.ts'))) as { SmtpUpstream: new (c: unknown, l: unknown) => Upstream };
const { configSchema } = (await import(join(root, 'src/config/schema.ts'))) as { configSchema: { parse(x: unknown): { delivery: { upstream: unknown } } } };
const { bufferOctets } = (await import(join(root, 'src/message/octets.ts'))) as { bufferOctets(b: Buffer): unknown };

// The sink in its own process; it prints its port.
const sink = spawn(
  process.execPath,
  [
    '--input-type=module',
    '-e',
    `import { CountingSink } from ${JSON.stringify(join(import.meta.dirname, 'sink.ts'))};
     const sink = await CountingSink.start(); console.log(sink.port);
     process.stdin.on('end', () => process.exit(0)); process.stdin.resume();`,
  ],
  { stdio: ['pipe', 'pipe', 'inherit'] },
);
const [portLine] = (await once(sink.stdout!, 'data')) as [Buffer];
const port = Number(String(portLine).trim());

const config = configSchema.parse({
  delivery: { upstream: { type: 'smtp', host: '127.0.0.1', port, maxConnections: 5, timeoutSeconds: 30, eightBitMime: 'auto' } },
}).delivery.upstream;
const upstream = new SmtpUpstream(config, pino({ level: 'silent' }));
await upstream.ready();

const profileDir = process.env.BENCH_CPU_PROF;
const session = profileDir ? new Session() : null;

for (const size of [4 * 1024, 100 * 1024]) {
  const octets = bufferOctets(benchMessage(size));
  const send = async (n: number): Promise<void> => {
    let next = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < n) {
          next++;
          const reply = await upstream.deliver({ from: 'payroll@example.com', to: ['alice@example.net'] }, octets);
          if (reply.code !== 250) throw new Error(`${reply.code} ${reply.text}`);
        }
      }),
    );
  };
  await send(200); // warm: connections open, code compiled
  if (session) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }
  const cpu = process.cpuUsage();
  const started = performance.now();
  await send(count);
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  if (session && profileDir) {
    const { profile } = await session.post('Profiler.stop');
    mkdirSync(profileDir, { recursive: true });
    writeFileSync(join(profileDir, `client-${size / 1024}k.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  }
  const perMessage = (used.user + used.system) / count;
  console.log(
    `${size / 1024} KiB: ${count} messages, ${perMessage.toFixed(0)} µs CPU each (user ${(used.user / count).toFixed(0)}, system ${(used.system / count).toFixed(0)}), ${(count / seconds).toFixed(0)} msg/s`,
  );
}

await upstream.close();
sink.stdin!.end();
await once(sink, 'exit');
