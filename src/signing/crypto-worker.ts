// A crypto worker thread: signs and verifies SHA-256 digests with keys the
// pool sent once and this thread keeps, and verifies whole signed messages
// (the self-check) against the records sent with them (see crypto-pool.ts).
import type { KeyObject } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { bufferOctets, fileOctets, type Octets } from '../message/octets.ts';
import { signDigest, verifyDigest } from './digest-signature.ts';
import type { BodyAt, MessageJob, WorkerReply, WorkerRequest } from './crypto-protocol.ts';
import type { Verification } from './verify.ts';

const port = parentPort;
if (!port) throw new Error('crypto-worker.ts runs as a worker thread');
const keys = new Map<number, KeyObject>();

port.on('message', (request: WorkerRequest) => {
  if (request.type === 'forget') {
    keys.delete(request.keyId);
    return;
  }
  if (request.type === 'verify-message') {
    verifyMessage(request).then(
      (verification) => port.postMessage({ id: request.id, ok: true, verification } satisfies WorkerReply),
      (err: unknown) => port.postMessage({ id: request.id, ok: false, error: err instanceof Error ? err.message : String(err) } satisfies WorkerReply),
    );
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

// The verifier (mailauth's modules, some 16 MiB) loads once the thread has said it is ready.
const verifier = import('./verify-bounded.ts');
verifier.catch(() => {}); // a verifier that cannot load fails each job that needs it, not the thread

async function verifyMessage(job: MessageJob): Promise<Verification> {
  const { verifyBounded } = await verifier;
  return verifyBounded(asBuffer(job.header), bodyOctets(job.body), job.records, job.alignment);
}

function bodyOctets(body: BodyAt): Octets {
  return 'bytes' in body ? bufferOctets(asBuffer(body.bytes)) : fileOctets(body.file, body.start, body.size);
}

/** The same memory, seen as a Buffer (a Uint8Array arrives as itself). */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
