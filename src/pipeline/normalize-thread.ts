// One worker thread for the normalization of large messages, started when
// first needed. Jobs run one after another: each holds fixed-size buffers
// only, and a burst of large messages waits its turn instead of taking
// every core from the SMTP sessions.
import { Worker } from 'node:worker_threads';
import type { NormalizedFile, NormalizeOptions } from './normalize/options.ts';
import type { NormalizeJob, NormalizeJobReply } from './normalize-worker.ts';

const WORKER = new URL('./normalize-worker.ts', import.meta.url);
/**
 * The thread holds header blocks and fixed-size buffers only (a few MiB at
 * most); a small heap makes V8 collect its garbage, the strings of the
 * quoted-printable encoder, often instead of letting it pile up.
 */
const HEAP_LIMITS = { maxOldGenerationSizeMb: 48, maxYoungGenerationSizeMb: 8 };

let worker: Worker | null = null;
let nextId = 1;
const pending = new Map<number, { resolve(result: NormalizedFile): void; reject(err: Error): void }>();

function thread(): Worker {
  if (worker) return worker;
  const started = new Worker(WORKER, { resourceLimits: HEAP_LIMITS });
  started.on('message', (reply: NormalizeJobReply) => {
    const job = pending.get(reply.id);
    if (!job) return;
    pending.delete(reply.id);
    if (reply.ok) job.resolve(reply.result);
    else job.reject(new Error(reply.error));
    if (pending.size === 0) started.unref();
  });
  const fail = (err: Error): void => {
    // A thread that died takes its jobs with it; the next job starts a new one.
    if (worker === started) worker = null;
    for (const job of pending.values()) job.reject(err);
    pending.clear();
  };
  started.on('error', fail);
  started.on('exit', (code) => fail(new Error(`the normalization thread exited (code ${code})`)));
  worker = started;
  return started;
}

/** normalizeFile() in the normalization thread. Rejects when the thread fails; the message is then refused with 451. */
export function normalizeFileInThread(inPath: string, outPath: string, options: NormalizeOptions): Promise<NormalizedFile> {
  const id = nextId++;
  const job: NormalizeJob = { id, inPath, outPath, options: { ...options, now: options.now ?? new Date() } };
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    const running = thread();
    running.ref();
    running.postMessage(job);
  });
}
