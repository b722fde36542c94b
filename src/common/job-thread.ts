// A worker thread that answers jobs by number: each job posted carries an
// `id`, each answer `{ id, ok: true, ... }` or `{ id, ok: false, error }`.
// Busy, it keeps the process alive; idle, it does not. What happens to the
// jobs of a thread that dies is the owner's decision (retry elsewhere, or
// fail them), so errors and the exit are passed on as they come.
import { Worker, type WorkerOptions } from 'node:worker_threads';

export type JobReply = { id: number; ok: true } | { id: number; ok: false; error: string };

/** A job waiting for its answer. */
export interface ThreadJob<Reply> {
  resolve(reply: Reply): void;
  reject(err: Error): void;
}

export interface JobThreadEvents {
  /** A message that answers no job (a thread's "ready", say). */
  message?(message: unknown): void;
  error?(err: Error): void;
  exit(code: number): void;
}

export class JobThread<Reply extends JobReply, Job extends ThreadJob<Extract<Reply, { ok: true }>>> {
  readonly worker: Worker;
  /** Jobs posted and not yet answered, by id. */
  readonly jobs = new Map<number, Job>();

  /** Throws when the thread cannot be started at all. */
  constructor(url: URL, options: WorkerOptions, events: JobThreadEvents) {
    this.worker = new Worker(url, options);
    this.worker.unref();
    this.worker.on('message', (message: Reply | { id?: undefined }) => {
      if (message.id === undefined) return events.message?.(message);
      const job = this.jobs.get(message.id);
      if (!job) return;
      this.jobs.delete(message.id);
      if (this.jobs.size === 0) this.worker.unref();
      if (message.ok) job.resolve(message as Extract<Reply, { ok: true }>);
      else job.reject(new Error((message as { error: string }).error));
    });
    this.worker.on('error', (err) => events.error?.(err));
    this.worker.on('exit', (code) => events.exit(code));
  }

  post(id: number, job: Job, message: unknown): void {
    if (this.jobs.size === 0) this.worker.ref();
    this.jobs.set(id, job);
    this.worker.postMessage(message);
  }
}
