// node bench/pipeline.ts: signing + self-check throughput on every core, and
// how long a small message waits while large ones go through a real relay.
//
// 1. Throughput: sign + self-check, and the whole pipeline (normalize, sign,
//    self-check), of a 4 KB message, with many messages in flight, beside the
//    raw node:crypto RSA-2048 rate of every core (bench/sign-check.ts, which
//    npm run bench runs too).
// 2. Latency: a real relay on loopback; a small message sent every 50 ms,
//    alone and then while six 30 MB messages are being relayed.
// Every loop is bounded in time; BENCH_SECONDS, BENCH_ROUNDS and BENCH_BIG_MB
// set the length. Only 127.0.0.1 is used.
import { availableParallelism, cpus } from 'node:os';
import nodemailer from 'nodemailer';
import { startSink, startTestRelay } from '../test/helpers/relay-harness.ts';
import { signCheckRows } from './sign-check.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 1);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const BIG_MB = Number(process.env.BENCH_BIG_MB ?? 30);

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const quantile = (values: number[], q: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * q))]!;

function smallMessage(n = 0): Buffer {
  const line = 'The quick brown fox jumps over the lazy dog, again and again and again.\r\n';
  return Buffer.from(
    'From: Payroll <payroll@example.com>\r\nTo: alice@example.net\r\nSubject: Payslip\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n' +
      `Message-ID: <bench-${n}@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n` +
      line.repeat(55),
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
  console.log(`${what.padEnd(52)} ${value.padStart(12)}   ${limit.padEnd(36)} ${ratio.padStart(6)}`);

console.log(
  `node ${process.version}, ${availableParallelism()} × ${cpus()[0]?.model}; ${ROUNDS} alternating rounds of ${SECONDS} s, 32 messages in flight, medians\n`,
);

// --- 1. Throughput ---------------------------------------------------------
row('measurement', 'result', 'limit, same rounds', 'ratio');
await signCheckRows(ROUNDS, SECONDS, (r) => row(r.what, r.result, r.limit, pct(r.ratio)));

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

const summary = (l: number[]) =>
  `median ${median(l).toFixed(1)} ms, p90 ${quantile(l, 0.9).toFixed(1)} ms, max ${Math.max(...l).toFixed(1)} ms (${l.length} messages)`;
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
