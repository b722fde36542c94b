// Signing and verification off the event loop: worker threads do the
// RSA/Ed25519 key operations on SHA-256 digests, so SMTP sessions never wait
// on crypto (but for an RSA verification, cheaper than the trip). Only the
// 32-octet digest (and a key, once per key and thread) crosses to a thread,
// never a message.
//
// A thread that dies takes no job with it: its jobs go to another thread,
// once; a job that loses its thread twice fails with CryptoUnavailable (the
// client hears 451 and retries), never with a wrong signature. When threads
// cannot start at all, the pool works in this thread instead.
import type { KeyObject } from 'node:crypto';
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { JobThread } from '../common/job-thread.ts';
import type { WorkerReply, WorkerRequest } from './crypto-protocol.ts';
import { signDigest, verifyDigest, type KeyAlgorithm } from './digest-signature.ts';

/** The key operations, wherever they run. */
export interface DigestCrypto {
  sign(algorithm: KeyAlgorithm, digest: Uint8Array, privateKey: KeyObject): Promise<Buffer>;
  verify(algorithm: KeyAlgorithm, digest: Uint8Array, publicKey: KeyObject, signature: Uint8Array): Promise<boolean>;
}

/** Crypto could not be done just now (threads dying, queue full, pool closed): a temporary problem. */
export class CryptoUnavailable extends Error {}

/** In the calling thread: the CLI, tests, and the pool's fallback. */
export const inThreadCrypto: DigestCrypto = {
  sign: async (algorithm, digest, key) => signDigest(algorithm, digest, key),
  verify: async (algorithm, digest, key, signature) => verifyDigest(algorithm, digest, key, signature),
};

export interface PoolOptions {
  /** Threads; default defaultPoolSize(). */
  size?: number;
  /** Jobs waiting or running at once; beyond it a job fails with CryptoUnavailable. */
  maxQueue?: number;
  /** The worker module (tests give one that misbehaves). */
  workerUrl?: URL;
  /** Told, in one line, when a thread dies or the pool falls back to this thread. */
  onProblem?: (line: string) => void;
}

type Request = Extract<WorkerRequest, { type: 'sign' | 'verify' }>;
type JobAnswer = Exclude<WorkerReply, { ready: true }>;
interface Pending {
  request: Request;
  key: KeyObject;
  attempts: number;
  resolve(reply: Extract<WorkerReply, { ok: true }>): void;
  reject(err: Error): void;
}

interface Thread {
  jobThread: JobThread<JobAnswer, Pending>;
  worker: Worker;
  ready: boolean;
  jobs: Map<number, Pending>;
  /** Keys this thread holds, oldest first. */
  keys: Set<number>;
}

/** A job that lost its thread this many times fails instead of trying again. */
const MAX_ATTEMPTS = 2;
/** Threads that died before ever starting, in a row, after which the pool works in-thread. */
const MAX_START_FAILURES = 3;
/** Keys a thread keeps; rotation makes new KeyObjects, the oldest are forgotten. */
const KEYS_PER_THREAD = 256;

/**
 * One thread fewer than there are cores, and at most two. The event loop
 * keeps a core busy with everything else a message costs (SMTP, hashing,
 * the pipeline, the queue); a thread's key operation is a small part of
 * that (an RSA-2048 signature about 0.3 ms), so one thread keeps up with
 * one event loop and a second leaves room for larger keys. Each thread is a
 * V8 isolate of its own, about 20 MiB.
 */
export function defaultPoolSize(cores = availableParallelism()): number {
  return Math.min(2, Math.max(1, cores - 1));
}

const keyIds = new WeakMap<KeyObject, number>();
let nextKeyId = 1;
function keyId(key: KeyObject): number {
  let id = keyIds.get(key);
  if (id === undefined) keyIds.set(key, (id = nextKeyId++));
  return id;
}

export class CryptoPool implements DigestCrypto {
  readonly size: number;
  readonly #maxQueue: number;
  readonly #workerUrl: URL;
  readonly #onProblem: (line: string) => void;
  #threads: Thread[] = [];
  #queued = 0;
  #nextJob = 1;
  #startFailures = 0;
  #inThread = false;
  #closed = false;
  /** Jobs given to a second thread after their first one died. */
  retried = 0;

  constructor(options: PoolOptions = {}) {
    this.size = Math.max(1, options.size ?? defaultPoolSize());
    this.#maxQueue = options.maxQueue ?? 1024 * this.size;
    this.#workerUrl = options.workerUrl ?? new URL('./crypto-worker.ts', import.meta.url);
    this.#onProblem = options.onProblem ?? (() => {});
    for (let i = 0; i < this.size && !this.#inThread; i++) this.#spawn();
  }

  /** Whether the pool gave up on threads and works in the calling thread. */
  get inThread(): boolean {
    return this.#inThread;
  }

  /** Threads running now. */
  get threads(): readonly Worker[] {
    return this.#threads.map((t) => t.worker);
  }

  async sign(algorithm: KeyAlgorithm, digest: Uint8Array, privateKey: KeyObject): Promise<Buffer> {
    const reply = await this.#submit({ type: 'sign', id: 0, algorithm, digest: compact(digest), keyId: keyId(privateKey) }, privateKey);
    if (!('signature' in reply)) throw new Error('crypto thread answered a signing job without a signature');
    return Buffer.from(reply.signature);
  }

  /**
   * An RSA verification is done in the calling thread: it costs 30-40 µs,
   * where the trip to an idle thread and back costs the caller 110-130 µs
   * and a wait behind the signatures queued there. Ed25519's (about 185 µs)
   * goes to a thread.
   */
  async verify(algorithm: KeyAlgorithm, digest: Uint8Array, publicKey: KeyObject, signature: Uint8Array): Promise<boolean> {
    if (algorithm === 'rsa') return verifyDigest(algorithm, digest, publicKey, signature);
    const reply = await this.#submit(
      { type: 'verify', id: 0, algorithm, digest: compact(digest), signature: compact(signature), keyId: keyId(publicKey) },
      publicKey,
    );
    if (!('valid' in reply)) throw new Error('crypto thread answered a verification job without a verdict');
    return reply.valid;
  }

  /** Stops every thread; jobs still running fail with CryptoUnavailable. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const threads = this.#threads;
    this.#threads = [];
    for (const thread of threads) {
      for (const job of thread.jobs.values()) job.reject(new CryptoUnavailable('the signing threads are shutting down'));
      thread.jobs.clear();
    }
    this.#queued = 0;
    await Promise.all(threads.map((t) => t.worker.terminate()));
  }

  #submit(request: Request, key: KeyObject): Promise<Extract<WorkerReply, { ok: true }>> {
    if (this.#closed) return Promise.reject(new CryptoUnavailable('the signing threads are shut down'));
    if (this.#queued >= this.#maxQueue) return Promise.reject(new CryptoUnavailable(`${this.#queued} signing jobs are waiting already`));
    return new Promise((resolve, reject) => {
      this.#queued++;
      const done = () => this.#queued--;
      const job: Pending = {
        request: { ...request, id: this.#nextJob++ },
        key,
        attempts: 0,
        resolve: (reply) => (done(), resolve(reply)),
        reject: (err) => (done(), reject(err)),
      };
      this.#dispatch(job);
    });
  }

  #dispatch(job: Pending): void {
    if (this.#inThread) return this.#runHere(job);
    const thread = this.#threads.reduce((a, b) => (b.jobs.size < a.jobs.size ? b : a));
    job.attempts++;
    const id = job.request.keyId;
    if (!thread.keys.has(id)) {
      thread.keys.add(id);
      if (thread.keys.size > KEYS_PER_THREAD) {
        const oldest = thread.keys.values().next().value!;
        thread.keys.delete(oldest);
        thread.worker.postMessage({ type: 'forget', keyId: oldest } satisfies WorkerRequest);
      }
      thread.jobThread.post(job.request.id, job, { ...job.request, key: job.key } satisfies WorkerRequest);
    } else {
      thread.jobThread.post(job.request.id, job, job.request satisfies WorkerRequest);
    }
  }

  #runHere(job: Pending): void {
    const { request, key } = job;
    try {
      job.resolve(
        request.type === 'sign'
          ? { id: request.id, ok: true, signature: signDigest(request.algorithm, request.digest, key) }
          : { id: request.id, ok: true, valid: verifyDigest(request.algorithm, request.digest, key, request.signature) },
      );
    } catch (err) {
      job.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  #spawn(): void {
    let why = 'exited';
    let jobThread: JobThread<JobAnswer, Pending>;
    try {
      jobThread = new JobThread(
        this.#workerUrl,
        {},
        {
          message: () => {
            thread.ready = true; // the thread's only message that answers no job
            this.#startFailures = 0;
          },
          error: (err) => (why = err.message),
          exit: (code) => this.#lost(thread, `${why} (exit code ${code})`),
        },
      );
    } catch (err) {
      this.#startFailed(`cannot start a signing thread: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    const thread: Thread = { jobThread, worker: jobThread.worker, ready: false, jobs: jobThread.jobs, keys: new Set() };
    this.#threads.push(thread);
  }

  /** A thread ended: replace it, and give its jobs to another thread once. */
  #lost(thread: Thread, why: string): void {
    if (this.#closed || !this.#threads.includes(thread)) return;
    this.#threads = this.#threads.filter((t) => t !== thread);
    if (thread.ready) this.#onProblem(`a signing thread stopped (${why}); starting another`);
    else if (++this.#startFailures >= MAX_START_FAILURES) this.#startFailed(`signing threads do not start (${why})`);
    if (!this.#inThread) this.#spawn();
    for (const job of thread.jobs.values()) {
      if (!thread.ready) job.attempts--; // a thread that never started ran none of its jobs
      if (!this.#inThread && job.attempts >= MAX_ATTEMPTS) {
        job.reject(new CryptoUnavailable(`the signing thread stopped twice during this job (${why})`));
      } else {
        this.retried++;
        this.#dispatch(job);
      }
    }
  }

  #startFailed(line: string): void {
    if (this.#inThread) return;
    this.#inThread = true;
    this.#onProblem(`${line}; signing in the main thread instead`);
    const stranded = this.#threads.flatMap((t) => [...t.jobs.values()]);
    for (const thread of this.#threads) void thread.worker.terminate();
    this.#threads = [];
    for (const job of stranded) this.#runHere(job);
  }
}

// The daemon's pool, shared by every listener in the process; without one
// (the `sign` command, most tests), crypto runs in the calling thread.
let shared: { pool: CryptoPool; users: number } | null = null;

/** Starts the process's pool, or joins the running one; release() stops it after its last user. */
export function acquireCryptoPool(options: PoolOptions = {}): { pool: CryptoPool; release(): Promise<void> } {
  if (!shared) shared = { pool: new CryptoPool(options), users: 0 };
  const entry = shared;
  entry.users++;
  let released = false;
  return {
    pool: entry.pool,
    async release() {
      if (released) return;
      released = true;
      if (--entry.users > 0) return;
      if (shared === entry) shared = null;
      await entry.pool.close();
    },
  };
}

/** Where the pipeline's crypto runs: the process's pool when one is running, else this thread. */
export function sharedCrypto(): DigestCrypto {
  return shared?.pool ?? inThreadCrypto;
}

/**
 * The octets alone: postMessage copies a typed array's whole ArrayBuffer, and
 * a small Buffer (a signature decoded from base64) is a slice of Node's shared
 * 64 KiB pool, which cost 0.6 ms a verification under load.
 */
function compact(bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : new Uint8Array(bytes);
}
