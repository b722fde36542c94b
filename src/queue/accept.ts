// Taking a signed message into the queue, in the order that makes a 250 safe.
// A small message (up to INLINE_MAX_SIZE) goes into the index with its rows:
// one commit, one fsync of the WAL, shared with the messages committed with
// it. A larger one is a spool file first: written and fsynced → renamed into
// msg/ → msg/ fsynced → index rows committed. Resolve means the client may be
// told 250; reject means it must be told 4xx (452 4.3.1 for
// SpoolUnavailableError), and nothing is left behind that could be delivered.
import type { NewMessage, QueueIndex } from './queue-index.ts';
import { readOctets, type Octets } from '../message/octets.ts';
import { newSpoolId, type Spool, type StoredMessage } from './spool.ts';
import { spoolError } from '../common/spool-error.ts';

export type QueueEnvelope = Omit<NewMessage, 'id' | 'size' | 'octets'>;

/**
 * The largest message kept in queue.db rather than in a file of its own. A
 * file costs the event loop a create, a write, two fsyncs and a rename in
 * the thread pool before the index commit, and an unlink once delivered; in
 * the index the octets ride in the WAL with the rows (33 pages at most) and
 * are written once more into the database by a checkpoint. At 100 KiB that
 * still costs less than the file (BENCHMARKS.md); the limit is the size
 * the intake keeps in memory (SPILL_AT), so a message received into a file
 * is spooled as one.
 */
export const INLINE_MAX_SIZE = 128 * 1024;

/** A message taken in, and how long each durable step took (milliseconds, for its log line). */
export interface AcceptedMessage extends StoredMessage {
  /** A file: writing it, its fsync, the rename into msg/ and msg/'s fsync. In the index: gathering its octets (none to gather when they are in memory). */
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
  const content = typeof source === 'function' ? source : () => source;
  const id = newSpoolId();
  const octets = content(id);
  if (octets.size <= INLINE_MAX_SIZE) {
    // Octets in memory go as they are: the index puts them together as it writes them.
    let parts: readonly Buffer[];
    try {
      parts = octets.held ?? [await readOctets(octets)];
    } catch (err) {
      throw spoolError(err);
    }
    const size = parts.reduce((sum, part) => sum + part.length, 0);
    const gathered = performance.now();
    await queue.index.enqueue({ ...envelope, id, size, octets: parts });
    return { id, size, spoolMs: gathered - started, commitMs: performance.now() - gathered };
  }
  const stored = await writeNamed(queue.spool, id, octets);
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

async function writeNamed(spool: Spool, id: string, octets: Octets): Promise<StoredMessage> {
  const writer = spool.begin(id);
  try {
    writer.expect(octets.size);
    for await (const chunk of octets.chunks()) await writer.write(chunk);
  } catch (err) {
    writer.abort();
    throw spoolError(err);
  }
  return writer.commit();
}
