// The messages between the crypto pool and its worker threads. A key travels
// with the first job that needs it on a thread (KeyObjects are cloneable),
// and is then named by its number. A message to verify travels as its
// header block and its body: the body's octets moved (not copied) to the
// thread when in memory, or the file and range the thread reads itself.
import type { KeyObject } from 'node:crypto';
import type { AlignmentMode } from './alignment.ts';
import type { KeyAlgorithm } from './digest-signature.ts';
import type { Verification } from './verify.ts';
import type { PublishedRecords } from './published-records.ts';

interface Job {
  id: number;
  algorithm: KeyAlgorithm;
  digest: Uint8Array;
  keyId: number;
  /** Present the first time this thread sees the key. */
  key?: KeyObject;
}

/** A body for a thread to hash: its octets, or `size` octets of `file` from `start`. */
export type BodyAt = { bytes: Uint8Array } | { file: string; start: number; size: number };

export interface MessageJob {
  type: 'verify-message';
  id: number;
  header: Uint8Array;
  body: BodyAt;
  records: PublishedRecords;
  alignment: AlignmentMode;
}

export type WorkerRequest = (Job & { type: 'sign' }) | (Job & { type: 'verify'; signature: Uint8Array }) | MessageJob | { type: 'forget'; keyId: number };

export type WorkerReply =
  | { ready: true }
  | { id: number; ok: true; signature: Uint8Array }
  | { id: number; ok: true; valid: boolean }
  | { id: number; ok: true; verification: Verification }
  | { id: number; ok: false; error: string };
