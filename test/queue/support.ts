// Shared pieces of the queue tests: a size-limited tmpfs for a real full disk,
// and envelopes to enqueue.
import { execFileSync } from 'node:child_process';
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
