// The signer in-process, each figure beside the physical limit it is bound by
// (raw node:crypto signing with a parsed KeyObject, or raw SHA-256 over the
// same bytes fed in 64 KiB pieces, as the body hasher feeds it). The machine
// is shared, so each figure and its limit are measured in alternation, round
// after round, and the medians are reported: both saw the same neighbours.
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { configSchema } from '../src/config/schema.ts';
import { signOptionsFor } from '../src/pipeline/signing-policy.ts';
import { BodyHasher } from '../src/signing/body-hash.ts';
import { signMessage } from '../src/signing/signer.ts';
import type { ActiveKey } from '../src/keys/key-store.ts';
import { benchMessage } from './message.ts';
import { median } from './stats.ts';

type Work = () => unknown;

export interface SignerRow {
  what: string;
  result: string;
  limit: string;
  ratio: number;
}

/** Operations per second of `fn` over `seconds`. */
function rateOnce(fn: Work, seconds: number): number {
  const start = performance.now();
  const end = start + seconds * 1000;
  let n = 0;
  while (performance.now() < end) {
    fn();
    n++;
  }
  return n / ((performance.now() - start) / 1000);
}

/** `fn` and the `limit` it is compared with, in alternation: median rates and median ratio. */
function against(fn: Work, limit: Work, rounds: number, seconds: number): { rate: number; limit: number; ratio: number } {
  const rates: number[] = [];
  const limits: number[] = [];
  const ratios: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const l = rateOnce(limit, seconds);
    const r = rateOnce(fn, seconds);
    limits.push(l);
    rates.push(r);
    ratios.push(r / l);
  }
  return { rate: median(rates), limit: median(limits), ratio: median(ratios) };
}

const fmt = (n: number, unit: string) => `${n.toFixed(n < 100 ? 1 : 0)} ${unit}`;

export function signerRows(rounds: number, seconds: number, say: (row: SignerRow) => void): SignerRow[] {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const ed = generateKeyPairSync('ed25519').privateKey;
  const key = (algorithm: 'rsa' | 'ed25519', privateKey: KeyObject): ActiveKey => ({ domain: 'example.com', selector: 's1', algorithm, privateKey });
  const options = signOptionsFor(configSchema.parse({}).signing, 'example.com');
  const small = benchMessage(4000);
  const big = benchMessage(10 * 1024 * 1024);
  const digest = createHash('sha256').update('x').digest();
  const rawRsa = () => sign('sha256', digest, rsa);
  const rawEd = () => sign(null, digest, ed);
  // In 64 KiB pieces, as the body hasher feeds it (one 10 MB update is slower: cache misses).
  const rawSha = () => {
    const hash = createHash('sha256');
    for (let at = 0; at < big.length; at += 65536) hash.update(big.subarray(at, at + 65536));
    return hash.digest();
  };
  const rows: SignerRow[] = [];
  const add = (row: SignerRow) => (rows.push(row), say(row));
  const mb = (rate: number) => fmt((rate * big.length) / 1e6, 'MB/s');

  let m = against(() => signMessage(small, [key('rsa', rsa)], options), rawRsa, rounds, seconds);
  add({ what: 'signMessage 4 KB, RSA-2048', result: fmt(m.rate, 'msg/s'), limit: `raw RSA-2048 sign ${fmt(m.limit, '/s')}`, ratio: m.ratio });
  m = against(() => signMessage(small, [key('ed25519', ed)], options), rawEd, rounds, seconds);
  add({ what: 'signMessage 4 KB, Ed25519', result: fmt(m.rate, 'msg/s'), limit: `raw Ed25519 sign ${fmt(m.limit, '/s')}`, ratio: m.ratio });
  m = against(
    () => signMessage(small, [key('rsa', rsa), key('ed25519', ed)], options),
    () => (rawRsa(), rawEd()),
    rounds,
    seconds,
  );
  add({
    what: 'signMessage 4 KB, dual RSA-2048 + Ed25519',
    result: fmt(m.rate, 'msg/s'),
    limit: `raw RSA + Ed25519 sign ${fmt(m.limit, '/s')}`,
    ratio: m.ratio,
  });
  for (const mode of ['relaxed', 'simple'] as const) {
    m = against(() => new BodyHasher(mode).update(big).digest(), rawSha, rounds, seconds);
    add({ what: `body hash 10 MB, ${mode}`, result: mb(m.rate), limit: `raw SHA-256 ${mb(m.limit)}`, ratio: m.ratio });
  }
  m = against(() => signMessage(big, [key('rsa', rsa)], options), rawSha, rounds, seconds);
  add({ what: 'signMessage 10 MB, RSA-2048', result: mb(m.rate), limit: `raw SHA-256 ${mb(m.limit)}`, ratio: m.ratio });
  return rows;
}
