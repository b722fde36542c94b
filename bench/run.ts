// npm run bench: signing and relay throughput, each beside the physical limit
// measured in the same run (raw node:crypto signing, raw SHA-256 hashing).
// The machine is shared, so each figure and its limit are measured in
// alternation, round after round, and the medians are reported: both saw the
// same neighbours. Every loop is bounded in time; the relay part talks only
// to 127.0.0.1. BENCH_SECONDS and BENCH_ROUNDS set the length.
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { cpus } from 'node:os';
import nodemailer from 'nodemailer';
import { configSchema } from '../src/config/schema.ts';
import { signOptionsFor } from '../src/pipeline/signing-policy.ts';
import { BodyHasher } from '../src/signing/body-hash.ts';
import { signMessage, type SigningKey } from '../src/signing/signer.ts';
import { startSink, startTestRelay } from '../test/helpers/relay-harness.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 0.5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);

type Work = () => unknown | Promise<unknown>;

/** Operations per second of `fn` over SECONDS. */
async function rateOnce(fn: Work): Promise<number> {
  const start = performance.now();
  const end = start + SECONDS * 1000;
  let n = 0;
  while (performance.now() < end) {
    await fn();
    n++;
  }
  return n / ((performance.now() - start) / 1000);
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

/** `fn` and the `limit` it is compared with, measured in alternation: median rates and median ratio. */
async function against(fn: Work, limit: Work): Promise<{ rate: number; limit: number; ratio: number }> {
  const rates: number[] = [];
  const limits: number[] = [];
  const ratios: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const l = await rateOnce(limit);
    const r = await rateOnce(fn);
    limits.push(l);
    rates.push(r);
    ratios.push(r / l);
  }
  return { rate: median(rates), limit: median(limits), ratio: median(ratios) };
}

function message(bodyBytes: number): Buffer {
  const line = 'The quick brown fox jumps over the lazy dog, again and again and again.\r\n';
  const body = line.repeat(Math.ceil(bodyBytes / line.length)).slice(0, bodyBytes);
  return Buffer.from(
    'From: Payroll <payroll@example.com>\r\nTo: alice@example.net\r\nSubject: Payslip\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n' +
      'Message-ID: <bench@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n' + body,
  );
}

const fmt = (n: number, unit: string) => `${n.toFixed(n < 100 ? 1 : 0)} ${unit}`;
const pct = (ratio: number) => `${(ratio * 100).toFixed(0)} %`;
function row(what: string, value: string, limit: string, ratio: string): void {
  console.log(`${what.padEnd(46)} ${value.padStart(12)}   ${limit.padEnd(36)} ${ratio.padStart(6)}`);
}

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const ed = generateKeyPairSync('ed25519').privateKey;
const key = (algorithm: 'rsa' | 'ed25519', privateKey: KeyObject): SigningKey => ({ domain: 'example.com', selector: 's1', algorithm, privateKey });
const options = signOptionsFor(configSchema.parse({}).signing, 'example.com');
const small = message(4000);
const big = message(10 * 1024 * 1024);
const digest = createHash('sha256').update('x').digest();
const rawRsa = () => sign('sha256', digest, rsa);
const rawEd = () => sign(null, digest, ed);
// In 64 KiB pieces, as the body hasher feeds it (one 10 MB update is slower: cache misses).
const rawSha = () => {
  const hash = createHash('sha256');
  for (let at = 0; at < big.length; at += 65536) hash.update(big.subarray(at, at + 65536));
  return hash.digest();
};

console.log(`node ${process.version}, ${cpus().length} × ${cpus()[0]?.model}; ${ROUNDS} alternating rounds of ${SECONDS} s, medians\n`);
row('measurement', 'result', 'limit (same rounds)', 'ratio');

let m = await against(() => signMessage(small, [key('rsa', rsa)], options), rawRsa);
row('signMessage 4 KB, RSA-2048', fmt(m.rate, 'msg/s'), `raw RSA-2048 sign ${fmt(m.limit, '/s')}`, pct(m.ratio));
m = await against(() => signMessage(small, [key('ed25519', ed)], options), rawEd);
row('signMessage 4 KB, Ed25519', fmt(m.rate, 'msg/s'), `raw Ed25519 sign ${fmt(m.limit, '/s')}`, pct(m.ratio));
m = await against(() => signMessage(small, [key('rsa', rsa), key('ed25519', ed)], options), () => (rawRsa(), rawEd()));
row('signMessage 4 KB, dual RSA + Ed25519', fmt(m.rate, 'msg/s'), `raw RSA + Ed25519 sign ${fmt(m.limit, '/s')}`, pct(m.ratio));
for (const mode of ['relaxed', 'simple'] as const) {
  m = await against(() => new BodyHasher(mode).update(big).digest(), rawSha);
  row(`body hash 10 MB, ${mode}`, fmt((m.rate * big.length) / 1e6, 'MB/s'), `raw SHA-256 ${fmt((m.limit * big.length) / 1e6, 'MB/s')}`, pct(m.ratio));
}
const rssBefore = process.memoryUsage().rss;
m = await against(() => signMessage(big, [key('rsa', rsa)], options), rawSha);
row('signMessage 10 MB, RSA-2048', fmt((m.rate * big.length) / 1e6, 'MB/s'), `raw SHA-256 ${fmt((m.limit * big.length) / 1e6, 'MB/s')}`, pct(m.ratio));
console.log(`${''.padEnd(46)} RSS grew by ${((process.memoryUsage().rss - rssBefore) / 1e6).toFixed(0)} MB while signing 10 MB messages`);

// The relay end to end over loopback: 4 pooled clients → relay (normalize, sign, self-check) → sink.
const sink = await startSink();
const relay = await startTestRelay({ delivery: { upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port, maxConnections: 4 } } }, (store) => {
  store.generate({ domain: 'example.com', algorithm: 'rsa', activate: true });
});
const client = nodemailer.createTransport({ host: '127.0.0.1', port: relay.port, pool: true, maxConnections: 4, maxMessages: Infinity, ignoreTLS: true });
const sendFour = () => Promise.all([1, 2, 3, 4].map(() => client.sendMail({ envelope: { from: 'payroll@example.com', to: ['alice@example.net'] }, raw: small })));
await sendFour(); // warm the pools
m = await against(sendFour, rawRsa);
row('relay end to end, 4 KB, RSA-2048', fmt(m.rate * 4, 'msg/s'), `raw RSA-2048 sign ${fmt(m.limit, '/s')}`, pct((m.rate * 4) / m.limit));
client.close();
await relay.close();
await sink.close();
