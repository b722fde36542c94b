// One accepted DATA: the pipeline, then our Received: field, then the
// upstream, then one log line. Whatever the upstream answers goes back to the
// client as is (sync mode).
import { randomBytes } from 'node:crypto';
import type { SMTPServerSession } from 'smtp-server';
import type { Envelope, UpstreamReply } from '../delivery/upstream.ts';
import { receivedField } from '../message/received.ts';
import { metrics } from '../observability/metrics.ts';
import { processMessage } from '../pipeline/pipeline.ts';
import type { RelayDeps } from './listener.ts';

/** Sign, self-check and deliver one message; the answer goes back to the client as is. */
export async function relayMessage(deps: RelayDeps, session: SMTPServerSession, envelope: Envelope, raw: Buffer): Promise<UpstreamReply> {
  const started = performance.now();
  const id = randomBytes(6).toString('hex');
  // Only the messages that arrive before the upstream's first EHLO answer wait here.
  await deps.upstream.ready();
  const outcome = await processMessage(raw, {
    store: deps.store,
    config: deps.config,
    upstream: deps.upstream.traits,
    hostname: deps.hostname,
    senderRefusal: (fromDomain) => deps.senders.refusal({ address: session.remoteAddress, user: session.user as string | undefined }, fromDomain),
  });
  const answer: UpstreamReply =
    outcome.action === 'refuse'
      ? { code: outcome.code, text: outcome.text }
      : await deps.upstream.deliver(envelope, withTrace(deps, session, envelope, id, outcome.message));
  const accepted = answer.code < 400;
  metrics.handled(outcome);
  if (outcome.action === 'deliver') metrics.deliveryAnswered(outcome.signatures[0]?.domain ?? null, answer.code, (performance.now() - started) / 1000);
  deps.logger[accepted ? 'info' : 'warn']({
    id,
    client: session.remoteAddress,
    user: session.user,
    from: envelope.from,
    to: envelope.to,
    size: raw.length,
    fromDomain: outcome.fromDomain,
    signatures: outcome.signatures.map((s) => `d=${s.domain} s=${s.selector} a=${s.algorithm}`),
    selfCheck: outcome.selfCheck,
    detail: outcome.detail,
    changes: outcome.changes.length ? outcome.changes : undefined,
    upstream: outcome.action === 'deliver' ? deps.upstream.name : undefined,
    reply: `${answer.code} ${answer.text}`,
    ms: Math.round(performance.now() - started),
  }, 'message');
  return accepted ? { code: answer.code, text: `${answer.text} [${id}]` } : answer;
}

/**
 * RFC 5321 §4.4: a relay adds a Received: field on top, above the signature.
 * It is added after signing, so no signature can cover it, whatever
 * signing.headers lists: later hops may add their own above it, and mailbox
 * providers read it as trace, never as content.
 */
function withTrace(deps: RelayDeps, session: SMTPServerSession, envelope: Envelope, id: string, message: Buffer): Buffer {
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
  return Buffer.concat([Buffer.from(field, 'latin1'), message]);
}
