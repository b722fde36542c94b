// The "Faults survived" table (docs/testing-and-benchmarks.md) has one row per fault case, in the
// suite's order, so that it cannot silently go stale when a case is added,
// renamed or removed (npm run faults:table writes it from a run).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../cli/support.ts';
import { CASES } from './cases.ts';
import type { FaultRow } from './support/rows.ts';
import { END, renderTable, replaceTable, START, TABLE_FILE, tableFaults } from './support/table.ts';

test('the documented table has exactly one row per fault case, in order', () => {
  const document = readFileSync(join(ROOT, TABLE_FILE), 'utf8');
  assert.deepEqual(
    tableFaults(document),
    CASES.map((c) => c.fault),
  );
});

test('every case id and fault is unique', () => {
  assert.equal(new Set(CASES.map((c) => c.id)).size, CASES.length);
  assert.equal(new Set(CASES.map((c) => c.fault)).size, CASES.length);
});

test('rendering: measured rows, failures and cases never run; a stale row is replaced', () => {
  const cases = [
    { id: 'a', fault: 'Fault | A' },
    { id: 'b', fault: 'Fault B' },
    { id: 'c', fault: 'Fault C' },
  ];
  const row = (id: string, passed: boolean): FaultRow => ({
    id,
    fault: '',
    does: 'defers',
    sees: '250 ×50',
    accepted: 50,
    lost: 0,
    duplicates: passed ? 2 : 0,
    passed,
    ...(passed ? {} : { error: 'the relay exited (1)' }),
    seconds: 1,
    recordedAt: '',
  });
  const table = renderTable(
    cases,
    new Map([
      ['a', row('a', true)],
      ['b', row('b', false)],
    ]),
  );
  assert.deepEqual(table.split('\n').slice(2), [
    '| Fault \\| A | defers | 250 ×50 | 0 of 50 (2 delivered twice) |',
    '| Fault B | **fails:** the relay exited (1); defers | 250 ×50 | 0 of 50 |',
    '| Fault C | not run | | ? |',
  ]);
  const readme = `# x\n${START}\n| old | row |\n${END}\nafter\n`;
  const written = replaceTable(readme, table);
  assert.deepEqual(tableFaults(written), ['Fault | A', 'Fault B', 'Fault C']);
  assert.match(written, /after\n$/);
  assert.doesNotMatch(written, /old/);
});
