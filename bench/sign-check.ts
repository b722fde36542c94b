// Signing + self-check as the relay does them (the crypto pool's threads sign,
// the event loop hashes, builds the header, runs mailauth's verifier and
// checks an RSA signature itself), many messages in flight, beside the raw node:crypto RSA-2048
// rate of every core: the physical limit of what the machine can sign. Each
// figure and its limit are measured in alternation, round after round, and
// the medians reported, so both saw the same neighbours. Each figure first
// runs unmeasured for a few seconds (BENCH_SIGNER_WARMUP, 6): as the relays of
// the end-to-end rounds get a round of their own, since a relay runs for
// weeks. Fresh, this path takes some 6 s at full load to reach its steady
// rate (its main-thread CPU a message falls from about 490 to 240 µs while V8
// compiles it), and half-second rounds would measure mostly that.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema } from '../src/config/schema.ts';
import { SqliteKeyStore } from '../src/keys/store.ts';
import { processMessage, type PipelineContext } from '../src/pipeline/pipeline.ts';
import { selfCheck } from '../src/pipeline/self-check.ts';
import { signOptionsFor } from '../src/pipeline/signing-policy.ts';
import { acquireCryptoPool } from '../src/signing/crypto-pool.ts';
import { signMessageAsync } from '../src/signing/signer.ts';
import { benchMessage } from './message.ts';
import { rawRsaAllCores } from './raw-rsa.ts';
import type { SignerRow } from './signer.ts';
import { median } from './stats.ts';

const IN_FLIGHT = 32;
const WARM_UP_SECONDS = Number(process.env.BENCH_SIGNER_WARMUP ?? 6);

/** Completed calls a second of `fn`, with IN_FLIGHT calls always pending. */
async function concurrentRate(fn: () => Promise<unknown>, seconds: number): Promise<number> {
  const start = performance.now();
  const end = start + seconds * 1000;
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

async function againstAllCores(
  fn: () => Promise<unknown>,
  rounds: number,
  seconds: number,
): Promise<{ rate: number; limit: number; ratio: number; cores: number }> {
  const rates: number[] = [];
  const limits: number[] = [];
  const ratios: number[] = [];
  let cores = 0;
  if (WARM_UP_SECONDS > 0) await concurrentRate(fn, WARM_UP_SECONDS);
  for (let round = 0; round < rounds; round++) {
    const raw = await rawRsaAllCores(seconds);
    const rate = await concurrentRate(fn, seconds);
    cores = raw.cores;
    limits.push(raw.rate);
    rates.push(rate);
    ratios.push(rate / raw.rate);
  }
  return { rate: median(rates), limit: median(limits), ratio: median(ratios), cores };
}

/** Sign + self-check, and the whole pipeline, of a 4 KB message with RSA-2048; the first row is the target's figure. */
export async function signCheckRows(rounds: number, seconds: number, say: (row: SignerRow) => void): Promise<SignerRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'dkim-relay-bench-sign-'));
  const store = SqliteKeyStore.open(dir);
  const crypto = acquireCryptoPool();
  try {
    store.generate({ domain: 'example.com', algorithm: 'rsa', bits: 2048, activate: true });
    const config = configSchema.parse({});
    const keys = store.activeKeys('example.com');
    const options = signOptionsFor(config.signing, 'example.com');
    const ctx: PipelineContext = { store, config, upstream: { dualSign: false, eightBitMime: true }, hostname: 'bench.test' };
    const message = benchMessage(4000);
    const threads = crypto.pool.inThread ? 'in-thread fallback' : `${crypto.pool.size} crypto thread${crypto.pool.size === 1 ? '' : 's'}`;

    const rows: SignerRow[] = [];
    const add = (what: string, m: Awaited<ReturnType<typeof againstAllCores>>) => {
      const row = { what, result: `${m.rate.toFixed(0)} msg/s`, limit: `raw RSA-2048 sign, ${m.cores} cores ${m.limit.toFixed(0)}/s`, ratio: m.ratio };
      rows.push(row);
      say(row);
    };
    add(
      `sign + self-check 4 KB, RSA-2048 (${threads})`,
      await againstAllCores(
        async () => {
          const signed = Buffer.concat([Buffer.from(await signMessageAsync(message, keys, options), 'latin1'), message]);
          const check = await selfCheck(signed, keys, store, 'relaxed');
          if (!check.pass) throw new Error(`self-check failed: ${check.detail}`);
        },
        rounds,
        seconds,
      ),
    );
    add(
      `pipeline 4 KB: normalize, sign, self-check (${threads})`,
      await againstAllCores(
        async () => {
          const outcome = await processMessage(message, ctx);
          if (outcome.action !== 'deliver' || outcome.selfCheck !== 'pass') throw new Error(`pipeline: ${outcome.detail}`);
        },
        rounds,
        seconds,
      ),
    );
    return rows;
  } finally {
    await crypto.release();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
