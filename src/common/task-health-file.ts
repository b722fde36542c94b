// Where `serve` records its background tasks' health for `dkim-relay status`,
// which runs as another process: <queue.dir>/background.json, one per relay
// (the spool lock makes queue.dir one relay's), reset when the relay starts.
// Written whole and renamed into place, so a reader never sees half of it.
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from './errors.ts';
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
  const file = join(queueDir, TASK_HEALTH_FILE);
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as TaskHealthFile;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    if (err instanceof SyntaxError)
      throw new UserError(`${file} is not the JSON the relay writes`, 'remove it: the running relay writes it again at the next failure of a background task');
    throw new UserError(`cannot read ${file} (${code ?? (err as Error).message})`, 'run dkim-relay status as the user the relay runs as');
  }
}
