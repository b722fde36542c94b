// BENCHMARKS.md keeps what is written around the generated section; the
// statistics the report is made of.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BEGIN, END, writeSection } from '../../bench/report.ts';
import { median, percentile } from '../../bench/stats.ts';
import { tempDir } from '../helpers/tmp.ts';

test('a run replaces only the section between the markers', () => {
  const file = join(tempDir(), 'BENCHMARKS.md');
  writeFileSync(file, `# Benchmarks\n\nintro\n\n${BEGIN}\nold results\n${END}\n\n## Earlier\n\nkept\n`);
  writeSection(file, 'new results');
  assert.equal(readFileSync(file, 'utf8'), `# Benchmarks\n\nintro\n\n${BEGIN}\nnew results\n${END}\n\n## Earlier\n\nkept\n`);
  writeSection(file, 'newer');
  assert.match(readFileSync(file, 'utf8'), new RegExp(`${BEGIN}\\nnewer\\n${END}\\n\\n## Earlier\\n\\nkept\\n$`));
});

test('a file without the markers gets the section at its end', () => {
  const file = join(tempDir(), 'BENCHMARKS.md');
  writeFileSync(file, '# Benchmarks\n\nintro\n');
  writeSection(file, 'results');
  assert.equal(readFileSync(file, 'utf8'), `# Benchmarks\n\nintro\n\n${BEGIN}\nresults\n${END}\n`);
});

test('nearest-rank percentiles and medians', () => {
  const values = Array.from({ length: 100 }, (_, i) => 100 - i); // 100 … 1, unsorted on purpose
  assert.equal(percentile(values, 50), 50);
  assert.equal(percentile(values, 99), 99);
  assert.equal(percentile(values, 100), 100);
  assert.equal(percentile([7], 99), 7);
  assert.ok(Number.isNaN(percentile([], 50)));
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 3);
});
