// One accepted DATA: the pipeline, then our Received: field, then either the
// queue (queue mode: 250 once the message is durable) or the upstream (sync
// mode: its answer goes back to the client as is), then one log line.
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { SMTPServerSession } from 'smtp-server';
import type { Envelope } from '../delivery/upstream.ts';
import type { IncomingMessage } from '../message/incoming.ts';
import { bufferOctets, joinOctets, type Octets } from '../message/octets.ts';
import { receivedField } from '../message/received.ts';
import { metrics } from '../observability/metrics.ts';
import { processMessage } from '../pipeline/pipeline.ts';
import { acceptMessage, type AcceptedMessage } from '../queue/accept.ts';
import type { NewRecipient } from '../queue/queue-index.ts';
import { SpoolUnavailableError } from '../common/spool-error.ts';
import { smtpReply, replyLine, type SmtpReply } from '../smtp/reply.ts';
import { intakeDir, receiveMessage } from '../message/intake.ts';
import type { RelayDeps } from './relay-deps.ts';

/** The envelope as the client gave it, with its RFC 3461 parameters. */
export interface IntakeEnvelope extends Envelope {
  ret?: 'FULL' | 'HDRS' | undefined;
  envid?: string | undefined;
  /** One per address of `to`, with NOTIFY and ORCPT. */
  recipients: NewRecipient[];
}

/** Reads one DATA, then relays it; its intake file, if any, is gone when the reply is. */
export async function receiveAndRelay(
  deps: RelayDeps,
  session: SMTPServerSession,
  envelope: IntakeEnvelope,
  data: Readable & { sizeExceeded?: boolean },
): Promise<SmtpReply> {
  const { listen, headers, queue } = deps.config;
  let received;
  try {
    received = await receiveMessage(data, { maxSize: listen.maxMessageSize, maxHeader: headers.maxSize, dir: intakeDir(queue.dir) });
  } catch (err) {
    if (!(err instanceof SpoolUnavailableError)) throw err;
    deps.logger.error(
      { err: err.message, dir: intakeDir(queue.dir) },
      'cannot write a message being received: messages are refused with 452 until the disk takes writes again',
    );
    return STORAGE_FULL;
  }
  if (!received.ok || data.sizeExceeded) return smtpReply(552, `5.3.4 Message exceeds the maximum size of ${listen.maxMessageSize} octets`);
  try {
    return await relayMessage(deps, session, envelope, received.message, received.size);
  } finally {
    await received.message.discard().catch((err: Error) => deps.logger.warn({ err: err.message }, 'intake file not removed; it goes at the next start'));
  }
}

/** RFC 3463 4.3.1: mail system full. */
const STORAGE_FULL: SmtpReply = { code: 452, enhanced: '4.3.1', text: 'Insufficient system storage, try again later' };

/** Sign and self-check one message, then queue or deliver it; the reply goes back to the client. */
export async function relayMessage(
  deps: RelayDeps,
  session: SMTPServerSession,
  envelope: IntakeEnvelope,
  incoming: IncomingMessage,
  size: number,
): Promise<SmtpReply> {
  const started = performance.now();
  // Only the messages that arrive before the upstream's first EHLO answer wait here.
  await deps.upstream.ready();
  const client = { address: session.remoteAddress, user: session.user as string | undefined };
  const outcome = await processMessage(incoming, {
    store: deps.store,
    config: deps.config,
    upstream: deps.upstream.traits,
    hostname: deps.hostname,
    maxMessageSize: deps.config.listen.maxMessageSize,
    senderRefusal: (domain, field) => deps.senders.refusal(client, domain, field),
    chain: deps.senders.chainFor(client) ?? undefined,
  });
  // Where the time from DATA's end to the reply went, in milliseconds (as Postfix's delays=).
  const delays: Record<string, number> = { signing: tenths(performance.now() - started) };
  let id = deps.queue ? undefined : randomBytes(6).toString('hex');
  let answer: SmtpReply;
  if (outcome.action === 'refuse') {
    answer = outcome.reply;
  } else if (deps.queue) {
    answer = await enqueue(deps, session, envelope, outcome.message, outcome.signatures, (stored) => {
      id = stored.id;
      delays.spool = tenths(stored.spoolMs);
      delays.commit = tenths(stored.commitMs);
    });
  } else {
    const handedOver = performance.now();
    answer = await deps.upstream.deliver(envelope, withTrace(deps, session, envelope, id!, outcome.message), outcome.signatures);
    delays.upstream = tenths(performance.now() - handedOver);
  }
  const accepted = answer.code < 400;
  metrics.handled(outcome);
  // Sync mode: the upstream's answer is the delivery; in queue mode the queue manager counts each recipient's.
  if (outcome.action === 'deliver' && !deps.queue)
    metrics.deliveryAnswered(outcome.signatures[0]?.domain ?? null, answer.code, (performance.now() - started) / 1000);
  deps.logger[accepted ? 'info' : 'warn'](
    {
      id,
      client: session.remoteAddress,
      user: session.user,
      from: envelope.from,
      to: envelope.to,
      size,
      fromDomain: outcome.fromDomain,
      signatures: outcome.signatures.map((s) => `d=${s.domain} s=${s.selector} a=${s.algorithm}`),
      selfCheck: outcome.selfCheck,
      detail: outcome.detail,
      changes: outcome.changes.length ? outcome.changes : undefined,
      upstream: outcome.action === 'deliver' && !deps.queue ? deps.upstream.name : undefined,
      reply: replyLine(answer),
      ms: Math.round(performance.now() - started),
      delays,
    },
    deps.queue && accepted ? 'message queued' : 'message',
  );
  if (!accepted || deps.queue) return answer;
  return { code: answer.code, enhanced: answer.enhanced, text: `${answer.text} [${id}]` };
}

/**
 * Queue mode: the signed message, under our Received: field naming its
 * queue id, is made durable; only then is the answer 250. A full or
 * unwritable spool is 452 4.3.1 (RFC 3463: mail system full), any other
 * problem 451: the client keeps the message and tries again.
 */
async function enqueue(
  deps: RelayDeps,
  session: SMTPServerSession,
  envelope: IntakeEnvelope,
  message: Octets,
  signatures: { domain: string; selector: string }[],
  accepted: (stored: AcceptedMessage) => void,
): Promise<SmtpReply> {
  const queue = deps.queue!;
  try {
    const stored = await acceptMessage(queue, (id) => withTrace(deps, session, envelope, id, message), {
      sender: envelope.from,
      client: session.user ? `${String(session.user)}@${session.remoteAddress}` : session.remoteAddress,
      signatures: signatures.map((s) => ({ domain: s.domain, selector: s.selector })),
      ret: envelope.ret,
      envid: envelope.envid,
      // What the client was allowed now decides later where a notice about this message may go.
      senderDomains: deps.senders.allowedDomains({ address: session.remoteAddress, user: session.user as string | undefined }),
      recipients: envelope.recipients,
    });
    accepted(stored);
    return { code: 250, enhanced: '2.0.0', text: `Ok: queued as ${stored.id}` };
  } catch (err) {
    if (err instanceof SpoolUnavailableError) {
      deps.logger.error({ err: err.message, dir: deps.config.queue.dir }, 'spool unavailable: messages are refused with 452 until it takes writes again');
      return STORAGE_FULL;
    }
    deps.logger.error({ err: (err as Error).message }, 'queueing the message failed');
    return { code: 451, enhanced: '4.3.0', text: 'Local error while queueing the message, try again later' };
  }
}

/**
 * RFC 5321 §4.4: a relay adds a Received: field on top, above the signature.
 * It is added after signing, so no signature can cover it, whatever
 * signing.headers lists: later hops may add their own above it, and mailbox
 * providers read it as trace, never as content.
 */
function withTrace(deps: RelayDeps, session: SMTPServerSession, envelope: Envelope, id: string, message: Octets): Octets {
  if (!deps.config.listen.addReceived) return message;
  const field = receivedField({
    ehlo: session.hostNameAppearsAs,
    address: session.remoteAddress,
    by: deps.hostname,
    esmtp: session.openingCommand === 'EHLO',
    tls: session.secure,
    auth: session.user !== undefined && session.user !== null,
    id,
    recipients: envelope.to,
    date: new Date(),
  });
  return joinOctets(bufferOctets(Buffer.from(field, 'latin1')), message);
}

/** Milliseconds to a tenth: finer is noise, coarser hides a fast step. */
function tenths(ms: number): number {
  return Math.round(ms * 10) / 10;
}
