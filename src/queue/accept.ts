// Taking a signed message into the queue, in the order that makes a 250 safe:
// file written and fsynced → renamed into msg/ → msg/ fsynced → index rows
// committed. Resolve means the client may be told 250; reject means it must
// be told 4xx (452 4.3.1 for SpoolUnavailableError), and nothing is left
// behind that could be delivered.
import type { NewMessage, QueueIndex } from './queue-index.ts';
import type { Octets } from '../message/octets.ts';
import { type Spool, type StoredMessage } from './spool.ts';
import { spoolError } from '../common/spool-error.ts';

export type QueueEnvelope = Omit<NewMessage, 'id' | 'size'>;

/** A message taken in, and how long each durable step took (milliseconds, for its log line). */
export interface AcceptedMessage extends StoredMessage {
  /** Writing the file, its fsync, the rename into msg/ and msg/'s fsync. */
  spoolMs: number;
  /** Waiting for its group, the index commit and the fsync of its WAL (shared by the group). */
  commitMs: number;
}

/**
 * `source` may be a function of the new message's id, for content that names
 * it (the Received: field's "id" clause, RFC 5321 §4.4).
 */
export async function acceptMessage(
  queue: { spool: Spool; index: QueueIndex },
  source: Octets | ((id: string) => Octets),
  envelope: QueueEnvelope,
): Promise<AcceptedMessage> {
  const started = performance.now();
  const stored = await writeNamed(queue.spool, typeof source === 'function' ? source : () => source);
  const spooled = performance.now();
  try {
    await queue.index.enqueue({ ...envelope, id: stored.id, size: stored.size });
  } catch (err) {
    // No 250 will be given: the client keeps the message and retries.
    await queue.spool.delete(stored.id).catch(() => undefined);
    throw err;
  }
  return { ...stored, spoolMs: spooled - started, commitMs: performance.now() - spooled };
}

async function writeNamed(spool: Spool, content: (id: string) => Octets): Promise<StoredMessage> {
  const writer = spool.begin();
  try {
    const octets = content(writer.id);
    writer.expect(octets.size);
    for await (const chunk of octets.chunks()) await writer.write(chunk);
  } catch (err) {
    writer.abort();
    throw spoolError(err);
  }
  return writer.commit();
}
