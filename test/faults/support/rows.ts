// What one fault case measured: a row of the "Faults survived"
// table. The driver writes it whether the case passed or not; the table
// script renders the rows of the last run.
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../../cli/support.ts';

export const RESULTS_DIR = process.env.FAULTS_RESULTS_DIR ?? join(ROOT, 'test', 'faults', 'results');

export interface FaultRow {
  id: string;
  fault: string;
  /** What the relay did, as measured. */
  does: string;
  /** What the sending client saw. */
  sees: string;
  /** Messages answered 250 in all loads of the case. */
  accepted: number | null;
  /** Of those, never delivered. */
  lost: number | null;
  /** Extra copies delivered (allowed, reported). */
  duplicates: number | null;
  passed: boolean;
  /** The first line of the failure, when it failed. */
  error?: string;
  seconds: number;
  recordedAt: string;
}

export function writeRow(row: FaultRow): void {
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(join(RESULTS_DIR, `${row.id}.json`), JSON.stringify(row, null, 2) + '\n');
}

export function readRows(): Map<string, FaultRow> {
  const rows = new Map<string, FaultRow>();
  let files: string[] = [];
  try {
    files = readdirSync(RESULTS_DIR).filter((f) => f.endsWith('.json'));
  } catch {
    return rows;
  }
  for (const f of files) {
    const row = JSON.parse(readFileSync(join(RESULTS_DIR, f), 'utf8')) as FaultRow;
    rows.set(row.id, row);
  }
  return rows;
}
