// The messages between the crypto pool and its worker threads. A key travels
// with the first job that needs it on a thread (KeyObjects are cloneable),
// and is then named by its number.
import type { KeyObject } from 'node:crypto';
import type { KeyAlgorithm } from './digest-signature.ts';

interface Job {
  id: number;
  algorithm: KeyAlgorithm;
  digest: Uint8Array;
  keyId: number;
  /** Present the first time this thread sees the key. */
  key?: KeyObject;
}

export type WorkerRequest = (Job & { type: 'sign' }) | (Job & { type: 'verify'; signature: Uint8Array }) | { type: 'forget'; keyId: number };

export type WorkerReply =
  { ready: true } | { id: number; ok: true; signature: Uint8Array } | { id: number; ok: true; valid: boolean } | { id: number; ok: false; error: string };
