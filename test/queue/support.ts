// Shared pieces of the queue tests: a size-limited tmpfs for a real full disk,
// envelopes to enqueue, and the commits a WAL file holds.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { TestContext } from 'node:test';
import type { NewMessage } from '../../src/queue/queue-index.ts';
import { tempDir } from '../helpers/tmp.ts';

/**
 * A tmpfs of `size` (e.g. "2m") mounted on a fresh directory, unmounted after
 * the test; undefined (and the test skipped) where mounting is not allowed.
 */
export function smallDisk(t: TestContext, size: string): string | undefined {
  const dir = tempDir('dkim-relay-tmpfs-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    t.skip(`cannot mount a size-limited tmpfs here (${String((err as Error).message).split('\n')[0]}): a full disk needs root or CAP_SYS_ADMIN`);
    return undefined;
  }
  t.after(() => execFileSync('umount', ['-l', dir], { stdio: 'pipe' }));
  return dir;
}

/** Makes a mounted tmpfs read-only, as a failing disk remounted by the kernel would be. */
export function makeReadOnly(dir: string): void {
  execFileSync('mount', ['-o', 'remount,ro', dir], { stdio: 'pipe' });
}

export function envelope(id: string, size: number, recipients = ['b@example.net'], extra: Partial<NewMessage> = {}): NewMessage {
  return {
    id,
    size,
    sender: 'a@example.com',
    client: '192.0.2.10',
    signatures: [{ domain: 'example.com', selector: 's1' }],
    recipients: recipients.map((address) => ({ address })),
    ...extra,
  };
}

/** Chunks of `chunkSize` octets, `count` of them, each filled with its number; the same buffer is reused. */
export async function* chunks(count: number, chunkSize: number): AsyncGenerator<Uint8Array> {
  const chunk = Buffer.alloc(chunkSize);
  for (let i = 0; i < count; i++) {
    chunk.fill(i % 251);
    yield chunk;
  }
}

/**
 * Write transactions committed to a WAL file so far: the frames that end a
 * commit carry the database size after it (a non-zero field), and frames of
 * an earlier generation of the file carry other salts (SQLite's WAL format).
 */
export function walCommits(file: string): number {
  const wal = readFileSync(file);
  const pageSize = wal.readUInt32BE(8);
  let commits = 0;
  for (let at = 32; at + 24 + pageSize <= wal.length; at += 24 + pageSize) {
    if (wal.readUInt32BE(at + 8) !== wal.readUInt32BE(16) || wal.readUInt32BE(at + 12) !== wal.readUInt32BE(20)) break;
    if (wal.readUInt32BE(at + 4) !== 0) commits++;
  }
  return commits;
}
