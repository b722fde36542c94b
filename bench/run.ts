// npm run bench: signing and relay throughput, each beside the physical limit
// measured in the same run (raw node:crypto signing, raw SHA-256 hashing).
// Every loop is bounded in time; the relay part talks only to 127.0.0.1.
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { cpus } from 'node:os';
import nodemailer from 'nodemailer';
import { BodyHasher } from '../src/signing/body-hash.ts';
import { signMessage, type SigningKey } from '../src/signing/signer.ts';
import { signOptionsFor } from '../src/pipeline/signing-policy.ts';
import { configSchema } from '../src/config/schema.ts';
import { startSink, startTestRelay } from '../test/helpers/relay-harness.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);

/** Runs `fn` repeatedly for SECONDS; returns operations per second. */
async function rate(fn: () => unknown | Promise<unknown>): Promise<number> {
  const end = performance.now() + SECONDS * 1000;
  let n = 0;
  const start = performance.now();
  while (performance.now() < end) {
    await fn();
    n++;
  }
  return n / ((performance.now() - start) / 1000);
}

function message(bodyBytes: number): Buffer {
  const line = 'The quick brown fox jumps over the lazy dog, again and again and again.\r\n';
  const body = line.repeat(Math.ceil(bodyBytes / line.length)).slice(0, bodyBytes);
  return Buffer.from(
    'From: Payroll <payroll@example.com>\r\nTo: alice@example.net\r\nSubject: Payslip\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n' +
      'Message-ID: <bench@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n' + body,
  );
}

const rows: [string, string, string][] = [];
const row = (what: string, value: string, versus = '') => {
  rows.push([what, value, versus]);
  console.log(`${what.padEnd(52)} ${value.padStart(16)}  ${versus}`);
};
const fmt = (n: number, unit: string) => `${n.toFixed(n < 100 ? 1 : 0)} ${unit}`;

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const ed = generateKeyPairSync('ed25519').privateKey;
const key = (algorithm: 'rsa' | 'ed25519', privateKey: KeyObject): SigningKey => ({ domain: 'example.com', selector: 's1', algorithm, privateKey });
const options = signOptionsFor(configSchema.parse({}).signing, 'example.com');
const small = message(4000);
const big = message(10 * 1024 * 1024);
const digest = createHash('sha256').update('x').digest();

console.log(`node ${process.version}, ${cpus().length} × ${cpus()[0]?.model}, ${SECONDS} s per measurement\n`);

const rawRsa = await rate(() => sign('sha256', digest, rsa));
row('raw RSA-2048 sign (node:crypto, KeyObject)', fmt(rawRsa, 'sig/s'), 'limit');
const rawEd = await rate(() => sign(null, digest, ed));
row('raw Ed25519 sign (node:crypto, KeyObject)', fmt(rawEd, 'sig/s'), 'limit');

const s1 = await rate(() => signMessage(small, [key('rsa', rsa)], options));
row('signMessage 4 KB, RSA-2048', fmt(s1, 'msg/s'), `${((s1 / rawRsa) * 100).toFixed(0)} % of raw RSA`);
const s2 = await rate(() => signMessage(small, [key('ed25519', ed)], options));
row('signMessage 4 KB, Ed25519', fmt(s2, 'msg/s'), `${((s2 / rawEd) * 100).toFixed(0)} % of raw Ed25519`);
const s3 = await rate(() => signMessage(small, [key('rsa', rsa), key('ed25519', ed)], options));
row('signMessage 4 KB, dual RSA-2048 + Ed25519', fmt(s3, 'msg/s'), `${((s3 / (1 / (1 / rawRsa + 1 / rawEd))) * 100).toFixed(0)} % of raw RSA+Ed25519`);

const sha = await rate(() => createHash('sha256').update(big).digest());
row('raw SHA-256 of 10 MB', fmt((sha * big.length) / 1e6, 'MB/s'), 'limit');
for (const mode of ['relaxed', 'simple'] as const) {
  const bh = await rate(() => new BodyHasher(mode).update(big).digest());
  row(`body hash 10 MB, ${mode}`, fmt((bh * big.length) / 1e6, 'MB/s'), `${((bh / sha) * 100).toFixed(0)} % of raw SHA-256`);
}
const heapBefore = process.memoryUsage().rss;
const sBig = await rate(() => signMessage(big, [key('rsa', rsa)], options));
row('signMessage 10 MB, RSA-2048', fmt((sBig * big.length) / 1e6, 'MB/s'), `RSS +${((process.memoryUsage().rss - heapBefore) / 1e6).toFixed(0)} MB`);

// The relay end to end over loopback: pooled client → relay (sign + self-check) → sink.
const sink = await startSink();
const relay = await startTestRelay({ delivery: { upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port, maxConnections: 4 } } }, (store) => {
  store.generate({ domain: 'example.com', algorithm: 'rsa', activate: true });
});
const client = nodemailer.createTransport({ host: '127.0.0.1', port: relay.port, pool: true, maxConnections: 4, maxMessages: Infinity, ignoreTLS: true });
const sendOne = () => client.sendMail({ envelope: { from: 'payroll@example.com', to: ['alice@example.net'] }, raw: small });
await Promise.all([1, 2, 3, 4].map(sendOne)); // warm the pools
const started = performance.now();
let sent = 0;
const deadline = started + SECONDS * 2000;
await Promise.all([1, 2, 3, 4].map(async () => {
  while (performance.now() < deadline) {
    await sendOne();
    sent++;
  }
}));
const relayRate = sent / ((performance.now() - started) / 1000);
row('relay end to end, 4 KB, RSA-2048, 4 connections', fmt(relayRate, 'msg/s'), `${((relayRate / rawRsa) * 100).toFixed(0)} % of raw RSA (1 core)`);
client.close();
await relay.close();
await sink.close();
