// node bench/pipeline.ts: signing + self-check throughput on every core, and
// how long a small message waits while large ones go through a real relay.
//
// 1. Throughput: sign + self-check, and the whole pipeline (normalize, sign,
//    self-check), of a 4 KB message, with many messages in flight, beside the
//    raw node:crypto RSA-2048 rate of the same cores (one signing thread per
//    core). Measured in alternation, round after round; medians reported.
// 2. Latency: a real relay on loopback; a small message sent every 50 ms,
//    alone and then while six 30 MB messages are being relayed.
// Every loop is bounded in time; BENCH_SECONDS, BENCH_ROUNDS and BENCH_BIG_MB
// set the length. Only 127.0.0.1 is used.
import { availableParallelism, cpus } from 'node:os';
import { Worker } from 'node:worker_threads';
import nodemailer from 'nodemailer';
import { configSchema } from '../src/config/schema.ts';
import { KeyStore } from '../src/keys/store.ts';
import { processMessage, type PipelineContext } from '../src/pipeline/pipeline.ts';
import { selfCheck } from '../src/pipeline/self-check.ts';
import { signOptionsFor } from '../src/pipeline/signing-policy.ts';
import { acquireCryptoPool } from '../src/signing/crypto-pool.ts';
import { signMessageAsync } from '../src/signing/signer.ts';
import { startSink, startTestRelay, tempDir } from '../test/helpers/relay-harness.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 1);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const BIG_MB = Number(process.env.BENCH_BIG_MB ?? 30);
const IN_FLIGHT = 32;
const CORES = availableParallelism();

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const quantile = (values: number[], q: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * q))]!;

/** Raw RSA-2048 signatures per second with one signing thread per core (the physical limit). */
async function rawRsaAllCores(pem: string): Promise<number> {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { createPrivateKey, createHash, sign } = require('node:crypto');
    const key = createPrivateKey(workerData.pem);
    const data = createHash('sha256').update('x').digest();
    const end = performance.now() + workerData.ms;
    let n = 0;
    while (performance.now() < end) { sign('sha256', data, key); n++; }
    parentPort.postMessage(n);`;
  const counts = await Promise.all(
    Array.from({ length: CORES }, () => {
      const worker = new Worker(code, { eval: true, workerData: { pem, ms: SECONDS * 1000 } });
      return new Promise<number>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      }).finally(() => worker.terminate());
    }),
  );
  return counts.reduce((a, b) => a + b, 0) / SECONDS;
}

/** Completed calls per second of `fn` with IN_FLIGHT calls always pending, over SECONDS. */
async function concurrentRate(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  const end = start + SECONDS * 1000;
  let n = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (performance.now() < end) {
        await fn();
        n++;
      }
    }),
  );
  return n / ((performance.now() - start) / 1000);
}

async function against(fn: () => Promise<unknown>, pem: string): Promise<{ rate: number; limit: number; ratio: number }> {
  const rates: number[] = [];
  const limits: number[] = [];
  const ratios: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const l = await rawRsaAllCores(pem);
    const r = await concurrentRate(fn);
    limits.push(l);
    rates.push(r);
    ratios.push(r / l);
  }
  return { rate: median(rates), limit: median(limits), ratio: median(ratios) };
}

function smallMessage(n = 0): Buffer {
  const line = 'The quick brown fox jumps over the lazy dog, again and again and again.\r\n';
  return Buffer.from(
    'From: Payroll <payroll@example.com>\r\nTo: alice@example.net\r\nSubject: Payslip\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n' +
      `Message-ID: <bench-${n}@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n` + line.repeat(55),
  );
}

/** A multipart message with one base64 attachment of about `mb` MB. */
function bigMessage(mb: number, n: number): Buffer {
  const line = Buffer.alloc(57, n + 1).toString('base64') + '\r\n';
  const lines = Math.ceil((mb * 1e6) / line.length);
  return Buffer.concat([
    Buffer.from(
      `From: Scanner <scanner@example.com>\r\nTo: archive@example.net\r\nSubject: Scan ${n}\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n` +
        `Message-ID: <big-${n}@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n` +
        '--b\r\nContent-Type: text/plain\r\n\r\nThe scan.\r\n--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n',
    ),
    Buffer.from(line.repeat(lines)),
    Buffer.from('--b--\r\n'),
  ]);
}

const pct = (ratio: number) => `${(ratio * 100).toFixed(0)} %`;
const row = (what: string, value: string, limit: string, ratio: string) =>
  console.log(`${what.padEnd(48)} ${value.padStart(12)}   ${limit.padEnd(34)} ${ratio.padStart(6)}`);

console.log(`node ${process.version}, ${CORES} × ${cpus()[0]?.model}; ${ROUNDS} alternating rounds of ${SECONDS} s, ${IN_FLIGHT} messages in flight, medians\n`);

// --- 1. Throughput ---------------------------------------------------------
const dir = tempDir('dkim-relay-bench-');
const store = KeyStore.open(dir.path);
store.generate({ domain: 'example.com', algorithm: 'rsa', bits: 2048, activate: true });
const config = configSchema.parse({});
const ctx: PipelineContext = { store, config, upstream: { dualSign: false, eightBitMime: true }, hostname: 'bench.test' };
const keys = store.activeKeys('example.com');
const pem = keys[0]!.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const options = signOptionsFor(config.signing, 'example.com');
const small = smallMessage();

const crypto = acquireCryptoPool(process.env.BENCH_THREADS ? { size: Number(process.env.BENCH_THREADS) } : {});
console.log(`crypto pool: ${crypto.pool.inThread ? 'in-thread fallback' : `${crypto.pool.size} threads`}`);
const signAndCheck = async () => {
  const signed = Buffer.concat([Buffer.from(await signMessageAsync(small, keys, options), 'latin1'), small]);
  const check = await selfCheck(signed, keys, store, 'relaxed');
  if (!check.pass) throw new Error(`self-check failed: ${check.detail}`);
};
const pipeline = async () => {
  const outcome = await processMessage(small, ctx);
  if (outcome.action !== 'deliver' || outcome.selfCheck !== 'pass') throw new Error(`pipeline: ${outcome.detail}`);
};

row('measurement', 'result', `limit: raw RSA-2048, ${CORES} threads`, 'ratio');
let m = await against(signAndCheck, pem);
row('sign + self-check, 4 KB, RSA-2048', `${m.rate.toFixed(0)} msg/s`, `${m.limit.toFixed(0)} sig/s`, pct(m.ratio));
m = await against(pipeline, pem);
row('pipeline (normalize, sign, self-check), 4 KB', `${m.rate.toFixed(0)} msg/s`, `${m.limit.toFixed(0)} sig/s`, pct(m.ratio));
await crypto.release();
store.close();
dir.remove();

// --- 2. Latency of a small message while large ones are relayed -------------
const sink = await startSink();
const relay = await startTestRelay({ delivery: { upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port, maxConnections: 8 } } }, (s) => {
  s.generate({ domain: 'example.com', algorithm: 'rsa', activate: true });
});
const client = () => nodemailer.createTransport({ host: '127.0.0.1', port: relay.port, ignoreTLS: true, logger: false });
const smallClient = nodemailer.createTransport({ host: '127.0.0.1', port: relay.port, ignoreTLS: true, pool: true, maxConnections: 1, logger: false });

/** Latencies (ms) of small messages sent one after another, 50 ms apart, until `until` settles or `max` were sent. */
async function smallLatencies(until: Promise<unknown>, max: number): Promise<number[]> {
  let done = false;
  void until.finally(() => (done = true));
  const latencies: number[] = [];
  for (let i = 0; i < max && !done; i++) {
    const start = performance.now();
    await smallClient.sendMail({ envelope: { from: 'payroll@example.com', to: ['alice@example.net'] }, raw: smallMessage(i) });
    latencies.push(performance.now() - start);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return latencies;
}

const summary = (l: number[]) => `median ${median(l).toFixed(1)} ms, p90 ${quantile(l, 0.9).toFixed(1)} ms, max ${Math.max(...l).toFixed(1)} ms (${l.length} messages)`;
await smallLatencies(Promise.resolve(), 3); // warm up
const idle = await smallLatencies(new Promise((resolve) => setTimeout(resolve, 2000)), 40);
console.log(`\nsmall message through the relay, idle:             ${summary(idle)}`);

const bigs = Array.from({ length: 6 }, (_, n) => bigMessage(BIG_MB, n));
const started = performance.now();
const bigSends = Promise.all(
  bigs.map(async (raw) => {
    const transport = client();
    try {
      await transport.sendMail({ envelope: { from: 'scanner@example.com', to: ['archive@example.net'] }, raw });
    } finally {
      transport.close();
    }
  }),
);
const busy = await smallLatencies(bigSends, 2000);
await bigSends;
console.log(`small message, during six ${BIG_MB} MB messages:       ${summary(busy)}`);
console.log(`six ${BIG_MB} MB messages relayed in ${((performance.now() - started) / 1000).toFixed(1)} s; sink received ${sink.received.length} messages`);
smallClient.close();
await relay.close();
await sink.close();
