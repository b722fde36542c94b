// Taking a signed message into the queue, in the order that makes a 250 safe:
// file written and fsynced → renamed into msg/ → msg/ fsynced → index rows
// committed. Resolve means the client may be told 250; reject means it must
// be told 4xx (452 4.3.1 for SpoolUnavailableError), and nothing is left
// behind that could be delivered.
import type { NewMessage, QueueIndex } from './queue-index.ts';
import type { Spool, StoredMessage } from './spool.ts';

export type QueueEnvelope = Omit<NewMessage, 'id' | 'size'>;

/**
 * `source` may be a function of the new message's id, for content that names
 * it (the Received: field's "id" clause, RFC 5321 §4.4).
 */
export async function acceptMessage(
  queue: { spool: Spool; index: QueueIndex },
  source: Uint8Array | AsyncIterable<Uint8Array> | ((id: string) => Uint8Array),
  envelope: QueueEnvelope,
): Promise<StoredMessage> {
  const stored = typeof source === 'function' ? await writeNamed(queue.spool, source) : await queue.spool.write(source);
  try {
    await queue.index.enqueue({ ...envelope, id: stored.id, size: stored.size });
  } catch (err) {
    // No 250 will be given: the client keeps the message and retries.
    await queue.spool.delete(stored.id).catch(() => undefined);
    throw err;
  }
  return stored;
}

async function writeNamed(spool: Spool, content: (id: string) => Uint8Array): Promise<StoredMessage> {
  const writer = await spool.begin();
  try {
    await writer.write(content(writer.id));
  } catch (err) {
    await writer.abort();
    throw err;
  }
  return writer.commit();
}
