// A crypto worker thread: signs and verifies SHA-256 digests with keys the
// pool sent once and this thread keeps (see crypto-pool.ts).
import type { KeyObject } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { signDigest, verifyDigest } from './digest-signature.ts';
import type { WorkerReply, WorkerRequest } from './crypto-protocol.ts';

const port = parentPort;
if (!port) throw new Error('crypto-worker.ts runs as a worker thread');
const keys = new Map<number, KeyObject>();

port.on('message', (request: WorkerRequest) => {
  if (request.type === 'forget') {
    keys.delete(request.keyId);
    return;
  }
  if (request.key) keys.set(request.keyId, request.key);
  let reply: WorkerReply;
  try {
    const key = keys.get(request.keyId);
    if (!key) throw new Error(`key ${request.keyId} was never sent to this thread`);
    reply =
      request.type === 'sign'
        ? { id: request.id, ok: true, signature: signDigest(request.algorithm, request.digest, key) }
        : { id: request.id, ok: true, valid: verifyDigest(request.algorithm, request.digest, key, request.signature) };
  } catch (err) {
    reply = { id: request.id, ok: false, error: err instanceof Error ? err.message : String(err) };
  }
  port.postMessage(reply);
});
port.postMessage({ ready: true } satisfies WorkerReply);
