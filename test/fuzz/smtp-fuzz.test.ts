// A bounded fuzz run against the relay in-process: random and mutated SMTP
// sessions and mutated messages, with the invariants checked after every batch
// and at the end: the daemon never crashes, never leaks, never lies.
//
//   FUZZ_SEED=<n>     replay a run (the seed is printed either way)
//   FUZZ_CASES=<n>    how many cases (default 3000; the run also stops starting batches after ~70 s)
//   FUZZ_ONLY=<i,j>   run only these cases of the seed (replays a failure)
// Longer runs: node_modules/.bin/node bench/fuzz.ts --cases 100000 --seed <n>
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { formatSummary, runFuzz, startTarget, type Summary, type Target } from './fuzz-run.ts';
import { INVARIANT, type Failure } from './ledger.ts';
import { settingsFromEnv } from './prng.ts';
import { gc } from './resources.ts';

const settings = settingsFromEnv(3000);
const TIME_BUDGET_MS = 70_000;

function report(summary: Summary, failures: Failure[]): string {
  const total = [...new Set(failures.map((f) => f.invariant))].reduce((n, invariant) => n + (summary.counts.get(invariant) ?? 0), 0);
  const lines = failures
    .slice(0, 5)
    .map(
      (f) =>
        `- [${f.invariant}] ${f.index !== undefined ? `case ${f.index} (${summary.replay} FUZZ_ONLY=${f.index}): ` : ''}${f.detail}${f.log ? '\n    ' + f.log.slice(0, 40).join('\n    ') : ''}`,
    );
  if (total > lines.length) lines.push(`… and ${total - lines.length} more`);
  return `${total} failure(s) with ${summary.replay}:\n${lines.join('\n')}`;
}

describe('SMTP fuzz: the relay never crashes, never leaks, never lies', { timeout: 180_000 }, () => {
  let target: Target;
  let summary: Summary;
  const failing = (...invariants: string[]) => summary.failures.filter((f) => invariants.includes(f.invariant));

  before(async () => {
    process.stdout.write(`# fuzz seed ${settings.seed} (replay: FUZZ_SEED=${settings.seed}${settings.only ? ` FUZZ_ONLY=${settings.only.join(',')}` : ''})\n`);
    target = await startTarget();
    summary = await runFuzz(target, {
      seed: settings.seed,
      cases: settings.cases,
      only: settings.only,
      concurrency: 16,
      batchSize: 250,
      timeBudgetMs: TIME_BUDGET_MS,
    });
  });

  after(async () => {
    await target?.close();
  });

  test('summary', (t) => {
    for (const line of formatSummary(summary, 2).split('\n')) t.diagnostic(line);
    assert.ok(summary.casesRun > 0 || summary.casesPlanned === 0, 'no case ran');
  });

  test('it keeps answering a fresh valid session after every batch and at the end', () => {
    const found = failing(INVARIANT.alive);
    assert.equal(found.length, 0, report(summary, found));
  });

  test('no uncaught exception or unhandled rejection (the relay runs in this process)', () => {
    const found = failing(INVARIANT.noUncaught, INVARIANT.fuzzer);
    assert.equal(found.length, 0, report(summary, found));
  });

  test('never lies: a 250 after DATA is exactly one delivered message, to the accepted recipients; a refusal is none', () => {
    const found = failing(
      INVARIANT.accepted250,
      INVARIANT.refusedNotDelivered,
      INVARIANT.once,
      INVARIANT.recipients,
      INVARIANT.attributed,
      INVARIANT.acceptText,
    );
    assert.equal(found.length, 0, report(summary, found));
    assert.ok(
      summary.stats.sinkMessages >= summary.stats.accepted250,
      `${summary.stats.accepted250} × 250 after DATA but ${summary.stats.sinkMessages} messages at the sink`,
    );
  });

  test('every reply is a well-formed SMTP reply line', () => {
    const found = failing(INVARIANT.wellFormed);
    assert.equal(found.length, 0, report(summary, found));
  });

  test('every command is answered in time and no message stalls the event loop', () => {
    const found = failing(INVARIANT.answersInTime, INVARIANT.loopStall);
    assert.equal(found.length, 0, report(summary, found));
  });

  test('no file-descriptor leak', () => {
    const found = failing(INVARIANT.descriptors);
    assert.equal(found.length, 0, report(summary, found));
  });

  test('memory does not grow without bound', { skip: gc() === null ? 'no gc() available (--expose-gc could not be enabled)' : false }, () => {
    const found = failing(INVARIANT.memory);
    assert.equal(found.length, 0, report(summary, found));
  });

  test('no internal error and no self-check failure on mutated mail', () => {
    assert.equal(summary.findings.length, 0, report(summary, summary.findings));
  });

  test('nothing else went wrong', () => {
    const known = new Set<string>(Object.values(INVARIANT));
    const found = summary.failures.filter((f) => !known.has(f.invariant));
    assert.equal(found.length, 0, report(summary, found));
  });
});
