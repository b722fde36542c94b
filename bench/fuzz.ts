// The SMTP fuzzer as a long standalone run, outside CI:
//   node_modules/.bin/node bench/fuzz.ts --cases 100000 --seed 1234 [--concurrency 8] [--batch 500] [--minutes 60]
//   node_modules/.bin/node bench/fuzz.ts --seed 1234 --only 517,9031      (replay cases)
// Prints progress and a summary; exits 1 on any invariant failure or pipeline finding.
import { parseArgs } from 'node:util';
import { formatSummary, runFuzz, startTarget } from '../test/fuzz/fuzz-run.ts';
import { parseSeed } from '../test/fuzz/prng.ts';

const { values } = parseArgs({
  options: {
    cases: { type: 'string', default: '100000' },
    seed: { type: 'string' },
    only: { type: 'string' },
    concurrency: { type: 'string', default: '16' },
    batch: { type: 'string', default: '500' },
    minutes: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (values.help) {
  process.stdout.write('usage: node bench/fuzz.ts [--cases N] [--seed S] [--only i,j] [--concurrency C] [--batch B] [--minutes M]\n');
  process.exit(0);
}

const whole = (name: string, text: string | undefined): number | undefined => {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) {
    process.stderr.write(`--${name} must be a whole number, got ${text}\n`);
    process.exit(64);
  }
  return n;
};

const seed = values.seed !== undefined ? parseSeed(values.seed) : (Math.random() * 4294967296) >>> 0;
const only = values.only?.split(',').map((s) => whole('only', s.trim())!);
const cases = whole('cases', values.cases)!;
const minutes = whole('minutes', values.minutes);

process.stdout.write(
  `dkim-relay SMTP fuzz: seed ${seed}, ${only ? `cases ${only.join(',')}` : `${cases} cases`} (replay: node bench/fuzz.ts --seed ${seed} --only <case>)\n`,
);
const target = await startTarget();
let summary;
try {
  summary = await runFuzz(target, {
    seed,
    cases,
    only,
    concurrency: whole('concurrency', values.concurrency),
    batchSize: whole('batch', values.batch),
    timeBudgetMs: minutes === undefined ? undefined : minutes * 60_000,
    // A long run allows the heap a little more before calling it unbounded growth.
    heapSlackBytes: 64 * 1048576,
    progress: (p) => {
      const rate = p.done / (p.ms / 1000);
      process.stdout.write(
        `  ${p.done}/${p.total} cases, ${(p.ms / 1000).toFixed(0)} s, ${rate.toFixed(0)}/s, failures ${p.failures}, findings ${p.findings}${p.heapMiB !== undefined ? `, heap ${p.heapMiB} MiB` : ''}\n`,
      );
    },
  });
} finally {
  await target.close();
}
process.stdout.write(formatSummary(summary, 5) + '\n');
process.exitCode = summary.failures.length + summary.findings.length > 0 ? 1 : 0;
