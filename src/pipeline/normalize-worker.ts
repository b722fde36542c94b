// The normalization thread: rewrites one message file at a time (see
// normalize-thread.ts). Its work is synchronous file to file, so while it
// re-encodes a large part the main thread goes on serving sessions.
import { parentPort } from 'node:worker_threads';
import { normalizeFile } from './normalize/index.ts';
import type { NormalizedFile, NormalizeOptions } from './normalize/options.ts';

export interface NormalizeJob {
  id: number;
  inPath: string;
  outPath: string;
  options: NormalizeOptions;
}

export type NormalizeJobReply = { id: number; ok: true; result: NormalizedFile } | { id: number; ok: false; error: string };

const port = parentPort;
if (!port) throw new Error('normalize-worker.ts runs as a worker thread');

port.on('message', (job: NormalizeJob) => {
  let reply: NormalizeJobReply;
  try {
    reply = { id: job.id, ok: true, result: normalizeFile(job.inPath, job.outPath, job.options) };
  } catch (err) {
    reply = { id: job.id, ok: false, error: err instanceof Error ? err.message : String(err) };
  }
  port.postMessage(reply);
});
