// What the durable queue costs per message, apart from SMTP and signing:
// 20 concurrent intakes of 4 KiB messages (acceptMessage, as a session
// does), a queue manager with 20 workers delivering each to an upstream that
// accepts at once, until every file is gone. Prints the SQLite commits per
// message (counted in the WAL, its autocheckpoint off), the CPU time of the
// process and the event loop's busy time per message.
//
//   node bench/queue-cost.ts [messages] [tree]
//   strace -f -c -e trace=fsync,fdatasync,unlink,rename node bench/queue-cost.ts   (the fsyncs)
//
// `tree`: another checkout to measure the same way (its src/ is imported).
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Upstream } from '../src/delivery/upstream.ts';

const count = Number(process.argv[2] ?? 1500);
const tree = resolve(process.argv[3] ?? join(import.meta.dirname, '..'));
const from = <T>(path: string): Promise<T> => import(join(tree, path)) as Promise<T>;
const { silentLogger } = await from<typeof import('../src/common/logger.ts')>('src/common/logger.ts');
const { retryPolicy } = await from<typeof import('../src/queue/backoff.ts')>('src/queue/backoff.ts');
const { QueueManager } = await from<typeof import('../src/queue/manager.ts')>('src/queue/manager.ts');
const { QueueIndex } = await from<typeof import('../src/queue/queue-index.ts')>('src/queue/queue-index.ts');
const { Spool } = await from<typeof import('../src/queue/spool.ts')>('src/queue/spool.ts');
const { acceptMessage } = await from<typeof import('../src/queue/accept.ts')>('src/queue/accept.ts');
const { bufferOctets } = await from<typeof import('../src/message/octets.ts')>('src/message/octets.ts');
import type { ManagerOptions } from '../src/queue/manager.ts';
import { walCommits } from '../test/queue/support.ts';

const OK = { code: 250, enhanced: '2.0.0', text: 'Ok' };
const upstream: Upstream = {
  name: 'accepting',
  traits: { dualSign: false, eightBitMime: true, smtpUtf8: true, provisional: false },
  ready: async () => {},
  close: async () => {},
  async deliver(env) {
    await new Promise((r) => setImmediate(r));
    return { ...OK, recipients: env.to.map((address) => ({ address, reply: OK })) };
  },
};

const dir = mkdtempSync(join(tmpdir(), 'dkim-relay-queue-cost-'));
try {
  const spool = new Spool(dir);
  let manager: InstanceType<typeof QueueManager> | undefined;
  const index = QueueIndex.open(join(dir, 'queue.db'), { onCommit: () => manager?.wake() });
  index.db.pragma('wal_autocheckpoint = 0');
  manager = new QueueManager({
    spool,
    index,
    upstream,
    logger: silentLogger(),
    workers: 20,
    policy: retryPolicy({ retryAfter: '1m', maxRetryInterval: '1h', maxAge: '5d' }),
    notices: {} as ManagerOptions['notices'],
  });
  manager.start();
  const body = bufferOctets(Buffer.alloc(4096, 'x\r\n'));
  const envelope = {
    sender: 'a@example.com',
    client: '127.0.0.1',
    signatures: [{ domain: 'example.com', selector: 's' }],
    recipients: [{ address: 'b@example.net' }],
  };
  const commitsBefore = walCommits(join(dir, 'queue.db-wal'));
  const cpu = process.cpuUsage();
  const loop = performance.eventLoopUtilization();
  const started = performance.now();
  let sent = 0;
  await Promise.all(
    Array.from({ length: 20 }, async () => {
      while (sent < count) {
        sent++;
        await acceptMessage({ spool, index }, body, envelope);
      }
    }),
  );
  for (let i = 0; i < 6000 && readdirSync(join(dir, 'msg')).length > 0; i++) await new Promise((r) => setTimeout(r, 10));
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const busy = performance.eventLoopUtilization(loop).active;
  const commits = walCommits(join(dir, 'queue.db-wal')) - commitsBefore;
  const left = readdirSync(join(dir, 'msg')).length;
  await manager.stop(5000);
  index.close();
  console.log(
    `${tree}: ${count} messages (${left} left) in ${seconds.toFixed(1)} s; ${(commits / count).toFixed(2)} commits, ` +
      `${((used.user + used.system) / count).toFixed(0)} µs CPU and ${((busy * 1000) / count).toFixed(0)} µs of event loop per message`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
