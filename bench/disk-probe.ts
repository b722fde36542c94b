// The floor under queue mode's latency, measured during the same load: what
// it takes the disk to make one small message durable the way the spool does
// (write a 4 KiB file, fsync it, rename it into place, fsync the folder),
// once every `intervalMs`, in the folder the relays' spools live beside.
import { mkdtempSync, rmSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncPath } from '../src/queue/file-sync.ts';
import { now, sleep } from './stats.ts';

/** Milliseconds each durable write took, one every `intervalMs` for `seconds`. */
export async function diskProbe(parent: string, intervalMs: number, seconds: number): Promise<number[]> {
  const dir = mkdtempSync(join(parent, 'disk-probe-'));
  const data = Buffer.alloc(4096, 0x61);
  const took: number[] = [];
  const start = now();
  try {
    for (let i = 1; now() - start < seconds * 1000; i++) {
      await sleep(start + i * intervalMs - now());
      const begun = now();
      const temp = join(dir, `${i}.tmp`);
      const file = await open(temp, 'wx', 0o600);
      try {
        await file.write(data);
        await file.sync();
      } finally {
        await file.close();
      }
      await rename(temp, join(dir, `${i}.eml`));
      await fsyncPath(dir);
      took.push(now() - begun);
      await rm(join(dir, `${i}.eml`));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return took;
}
