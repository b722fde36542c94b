// Normalization of a message that may be too large to hold: a body that
// needs nothing (the common case, told by the scan made as it arrived) stays
// where it is, and only the header block is normalized, in memory. A body
// that must be rewritten is rewritten file to file, in a worker thread, so
// re-encoding a large part never holds up other sessions.
import { MAX_LINE_OCTETS } from '../message/mime/scan.ts';
import { normalize } from './normalize/index.ts';
import type { NormalizeOptions } from './normalize/options.ts';
import { headerBlockLength, type IncomingMessage } from '../message/incoming.ts';
import { bufferOctets, fileOctets, readOctets, type Octets } from '../message/octets.ts';
import { normalizeFileInThread } from './normalize-thread.ts';
import { smtpReply, type SmtpReply } from '../smtp/reply.ts';

export type NormalizedMessage = { ok: true; header: Buffer; body: Octets; changes: string[] } | { ok: false; reply: SmtpReply };

export async function normalizeIncoming(message: IncomingMessage, options: NormalizeOptions): Promise<NormalizedMessage> {
  const facts = message.bodyFacts;
  const bodySafe = facts.longest <= MAX_LINE_OCTETS && !facts.nul && (options.eightBitMime || !facts.eightBit);
  // Its body was scanned as it arrived: the normalizer scans the header block alone.
  const known = message.headerCut ? options : { ...options, bodyFacts: { start: message.header.length, findings: facts } };
  if (bodySafe) {
    // The header block alone is a message with an empty body: what normalize() does to it is all it would do to the whole.
    const result = normalize(message.header, options);
    if (!result.ok) return result;
    return { ok: true, header: result.message, body: message.body, changes: result.changes };
  }
  if (message.file) {
    const out = `${message.file}.normalized`;
    let result;
    try {
      result = await normalizeFileInThread(message.file, out, known);
    } catch (err) {
      return { ok: false, reply: smtpReply(451, `4.3.0 Could not prepare the message for signing (${(err as Error).message}), try again later`) };
    }
    if (!result.ok) return result;
    if (!result.changed) return { ok: true, header: message.header, body: message.body, changes: result.changes };
    // A Buffer crosses from the thread as a plain Uint8Array.
    const header = Buffer.from(result.header.buffer, result.header.byteOffset, result.header.byteLength);
    return { ok: true, header, body: fileOctets(out, header.length, result.size - header.length), changes: result.changes };
  }
  const whole = Buffer.concat([message.header, await readOctets(message.body)]);
  const result = normalize(whole, known);
  if (!result.ok) return result;
  if (result.message === whole) return { ok: true, header: message.header, body: message.body, changes: result.changes };
  const split = headerBlockLength(result.message);
  return { ok: true, header: result.message.subarray(0, split), body: bufferOctets(result.message.subarray(split)), changes: result.changes };
}
