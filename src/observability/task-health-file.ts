// Where `serve` records its background tasks' health for `dkim-relay status`,
// which runs as another process: <queue.dir>/background.json, one per relay
// (the spool lock makes queue.dir one relay's), reset when the relay starts.
// Written whole and renamed into place, so a reader never sees half of it.
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TaskHealth } from './background-tasks.ts';

export const TASK_HEALTH_FILE = 'background.json';

export interface TaskHealthFile {
  pid: number;
  updatedAt: string;
  tasks: TaskHealth[];
}

export function writeTaskHealth(queueDir: string, content: TaskHealthFile): void {
  const file = join(queueDir, TASK_HEALTH_FILE);
  mkdirSync(queueDir, { recursive: true, mode: 0o700 });
  writeFileSync(`${file}.tmp`, `${JSON.stringify(content, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

/** What an earlier process recorded is not this one's news. */
export function clearTaskHealth(queueDir: string): void {
  rmSync(join(queueDir, TASK_HEALTH_FILE), { force: true });
}

/** The health `serve` last recorded; undefined when nothing failed since it started (or it never ran). */
export function readTaskHealth(queueDir: string): TaskHealthFile | undefined {
  let text: string;
  try {
    text = readFileSync(join(queueDir, TASK_HEALTH_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return JSON.parse(text) as TaskHealthFile;
}
