// The limit a signer is measured against: raw node:crypto RSA-2048 signatures
// a second with a parsed KeyObject, on one core (this thread) and on every
// core (one worker thread per core, summed).
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

function signFor(seconds: number): number {
  const key = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const digest = createHash('sha256').update('x').digest();
  sign('sha256', digest, key);
  const start = performance.now();
  const end = start + seconds * 1000;
  let n = 0;
  while (performance.now() < end) {
    sign('sha256', digest, key);
    n++;
  }
  return n / ((performance.now() - start) / 1000);
}

if (!isMainThread) parentPort!.postMessage(signFor(workerData as number));

/** RSA-2048 signatures a second on one core. */
export const rawRsaOneCore = (seconds = 1): number => signFor(seconds);

/** RSA-2048 signatures a second on all cores at once. */
export async function rawRsaAllCores(seconds = 1): Promise<{ cores: number; rate: number }> {
  const cores = availableParallelism();
  const rates = await Promise.all(
    Array.from(
      { length: cores },
      () =>
        new Promise<number>((resolve, reject) => {
          const worker = new Worker(new URL(import.meta.url), { workerData: seconds });
          worker.once('message', (rate: number) => (resolve(rate), void worker.terminate()));
          worker.once('error', reject);
        }),
    ),
  );
  return { cores, rate: rates.reduce((a, b) => a + b, 0) };
}
