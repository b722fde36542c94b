// One worker thread for the normalization of large messages, started when
// first needed and stopped when idle. Jobs run one after another: each holds
// fixed-size buffers only, and a burst of large messages waits its turn
// instead of taking every core from the SMTP sessions.
import type { Worker } from 'node:worker_threads';
import { JobThread, type ThreadJob } from '../common/job-thread.ts';
import type { NormalizedFile, NormalizeOptions } from './normalize/options.ts';
import type { NormalizeJob, NormalizeJobReply } from './normalize-worker.ts';

const WORKER = new URL('./normalize-worker.ts', import.meta.url);
/**
 * The thread holds header blocks and fixed-size buffers only (a few MiB at
 * most); a small heap makes V8 collect its garbage, the strings of the
 * quoted-printable encoder, often instead of letting it pile up.
 */
const HEAP_LIMITS = { maxOldGenerationSizeMb: 48, maxYoungGenerationSizeMb: 8 };

type Waiting = ThreadJob<Extract<NormalizeJobReply, { ok: true }>>;

let current: JobThread<NormalizeJobReply, Waiting> | null = null;
let nextId = 1;
let idleTimer: NodeJS.Timeout | undefined;

/**
 * How long the thread is kept without a job. Its isolate and TypeScript
 * stripper cost about 40 MiB, held for ever after one large message needed
 * rewriting; starting it again costs tens of milliseconds, once a burst.
 */
export const normalizeThreadSettings = { idleStopMs: 30_000 };

/** The thread's Worker while one runs (to watch it stop). */
export function normalizeWorker(): Worker | null {
  return current?.worker ?? null;
}

function thread(): JobThread<NormalizeJobReply, Waiting> {
  if (current) return current;
  const fail = (err: Error): void => {
    // A thread that died takes its jobs with it; the next job starts a new one.
    if (current === started) current = null;
    for (const job of started.jobs.values()) job.reject(err);
    started.jobs.clear();
  };
  const started: JobThread<NormalizeJobReply, Waiting> = new JobThread(
    WORKER,
    { resourceLimits: HEAP_LIMITS },
    {
      error: fail,
      exit: (code) => fail(new Error(`the normalization thread exited (code ${code})`)),
    },
  );
  current = started;
  return started;
}

/** normalizeFile() in the normalization thread. Rejects when the thread fails; the message is then refused with 451. */
export function normalizeFileInThread(inPath: string, outPath: string, options: NormalizeOptions): Promise<NormalizedFile> {
  const id = nextId++;
  const message: NormalizeJob = { id, inPath, outPath, options: { ...options, now: options.now ?? new Date() } };
  clearTimeout(idleTimer);
  const running = thread();
  return new Promise((resolve, reject) => {
    const waiting: Waiting = {
      resolve: (reply) => {
        resolve(reply.result);
        stopWhenIdle(running);
      },
      reject: (err) => {
        reject(err);
        stopWhenIdle(running);
      },
    };
    running.post(id, waiting, message);
  });
}

function stopWhenIdle(running: JobThread<NormalizeJobReply, Waiting>): void {
  if (current !== running || running.jobs.size > 0) return;
  clearTimeout(idleTimer);
  idleTimer = setTimeout(() => {
    if (current !== running || running.jobs.size > 0) return;
    // Forgotten first: its exit then fails no job and the next one starts a new thread.
    current = null;
    void running.worker.terminate();
  }, normalizeThreadSettings.idleStopMs);
  idleTimer.unref();
}
