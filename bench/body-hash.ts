// The relaxed body hash of a 100 KB body, four kinds of text, 64 KiB chunks:
// ours (the signer's), mailauth's as the self-check runs it (kept independent
// of ours on purpose; its lines found by native searches) and as it ships,
// and raw SHA-256 over the same octets, the floor. Alternating
// rounds, medians; CPU time of this thread, so a busy machine moves the
// figures less than wall time would.
//
//   node bench/body-hash.ts [rounds]
import { createHash } from 'node:crypto';
import { BodyHasher } from '../src/signing/body-hash.ts';
import { mailauthBodyHash, shippedBodyHashers } from '../src/signing/mailauth-internals.ts';
import { median } from './stats.ts';

const ROUNDS = Number(process.argv[2] ?? 7);
const CHUNK = 64 * 1024;
const TARGET = 100 * 1024;
const fill = (text: string) => Buffer.from(text.repeat(Math.ceil(TARGET / text.length)));
const BODIES: Record<string, Buffer> = {
  'plain text (no trailing spaces)': fill('The quick brown fox jumps over the lazy dog, again and again and again.\r\n'),
  'format=flowed (a trailing space a line, blank lines)': fill('The quick brown fox jumps over the lazy dog, again and \r\nagain.  Again\r\n\r\n'),
  'indented HTML (runs of spaces on every line)': fill('    <td class="amount">  1,234.50  </td>\r\n'),
  'base64 attachment': Buffer.from(
    Buffer.alloc((TARGET / 4) * 3, 7)
      .toString('base64')
      .match(/.{1,76}/g)!
      .join('\r\n') + '\r\n',
  ),
};

type Hashing = (body: Buffer) => void;
const ours: Hashing = (body) => {
  const h = new BodyHasher('relaxed');
  for (let at = 0; at < body.length; at += CHUNK) h.update(body.subarray(at, at + CHUNK));
  h.digest();
};
const mailauths: Hashing = (body) => {
  const h = mailauthBodyHash('relaxed');
  for (let at = 0; at < body.length; at += CHUNK) h.update(body.subarray(at, at + CHUNK));
  h.digest('base64');
};
const shipped: Hashing = (body) => {
  const h = new shippedBodyHashers.RelaxedHash('sha256');
  // mailauth as shipped keeps a view of a chunk's tail until the next one: copies, as a caller reusing its buffer must pass them.
  for (let at = 0; at < body.length; at += CHUNK) h.update(Buffer.from(body.subarray(at, at + CHUNK)));
  h.digest('base64');
};
const raw: Hashing = (body) => void createHash('sha256').update(body).digest();

/** µs of this thread's CPU per body, over enough repetitions to last about 50 ms. */
function time(hashing: Hashing, body: Buffer): number {
  const reps = 20;
  const start = process.cpuUsage();
  for (let i = 0; i < reps; i++) hashing(body);
  const used = process.cpuUsage(start);
  return (used.user + used.system) / reps;
}

console.log(`relaxed body hash of about 100 KB, 64 KiB chunks, µs of CPU per body, median of ${ROUNDS} alternating rounds:`);
console.log('| body | ours | mailauth (self-check) | mailauth as shipped | raw SHA-256 |');
console.log('|---|---|---|---|---|');
for (const [name, body] of Object.entries(BODIES)) {
  const results = { ours: [] as number[], mailauth: [] as number[], shipped: [] as number[], raw: [] as number[] };
  for (const h of [ours, mailauths, shipped, raw]) time(h, body); // warm
  for (let r = 0; r < ROUNDS; r++) {
    results.ours.push(time(ours, body));
    results.mailauth.push(time(mailauths, body));
    results.shipped.push(time(shipped, body));
    results.raw.push(time(raw, body));
  }
  const m = (xs: number[]) => median(xs).toFixed(0);
  console.log(`| ${name}, ${body.length} octets | ${m(results.ours)} | ${m(results.mailauth)} | ${m(results.shipped)} | ${m(results.raw)} |`);
}
