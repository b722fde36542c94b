// npm run faults:table: writes the rows of the fault suite's last run
// (test/faults/results/) into the "Faults survived" table of
// docs/testing-and-benchmarks.md. Refuses
// while a case has no row or failed, unless --allow-failing.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../cli/support.ts';
import { CASES } from './cases.ts';
import { readRows, RESULTS_DIR } from './support/rows.ts';
import { renderTable, replaceTable, TABLE_FILE } from './support/table.ts';

const rows = readRows();
const missing = CASES.filter((c) => !rows.has(c.id)).map((c) => c.id);
const failing = CASES.filter((c) => rows.get(c.id)?.passed === false).map((c) => c.id);
if ((missing.length > 0 || failing.length > 0) && !process.argv.includes('--allow-failing')) {
  console.error(
    `not written: ${missing.length > 0 ? `no result for ${missing.join(', ')} in ${RESULTS_DIR} (run node --test test/faults/)` : ''}${missing.length > 0 && failing.length > 0 ? '; ' : ''}${failing.length > 0 ? `failing: ${failing.join(', ')}` : ''}; --allow-failing writes them as they are`,
  );
  process.exit(1);
}
const file = join(ROOT, TABLE_FILE);
writeFileSync(file, replaceTable(readFileSync(file, 'utf8'), renderTable(CASES, rows)));
console.log(
  `${TABLE_FILE}: ${CASES.length} fault cases (${CASES.length - missing.length - failing.length} passed${failing.length > 0 ? `, ${failing.length} failing` : ''}${missing.length > 0 ? `, ${missing.length} not run` : ''})`,
);
