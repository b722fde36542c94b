// Where signed mail goes next. Every upstream answers like an SMTP server:
// one reply for the transaction, which sync mode hands back to the client
// unchanged, and one per recipient, which the queue records.
import { hostname as osHostname } from 'node:os';
import type { UpstreamConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { Octets } from '../message/octets.ts';
import type { RcptDsn } from '../nodemailer-internals.ts';
import type { UpstreamTraits } from '../pipeline/pipeline.ts';
import type { SmtpReply } from '../smtp/reply.ts';
import { FileUpstream } from './file-upstream.ts';
import { MxUpstream, type MxOptions } from './mx-upstream.ts';
import { SmtpUpstream } from './smtp-upstream.ts';

export interface Envelope {
  /** Envelope sender; '' for the null sender (bounces, auto-replies). */
  from: string;
  to: string[];
  /** RFC 3461 parameters, passed on when the upstream announces DSN. */
  dsn?: EnvelopeDsn | undefined;
}

export interface EnvelopeDsn {
  ret?: 'FULL' | 'HDRS' | undefined;
  envid?: string | undefined;
  /**
   * NOTIFY and ORCPT of the recipients that have them, by their address in
   * `to`: each RCPT TO carries its own (RFC 3461 §4.1, §4.2), so recipients
   * whose parameters differ still share one transaction.
   */
  recipients?: ReadonlyMap<string, RcptDsn> | undefined;
}

/** The transaction's reply, and each recipient's own (in the order of `to`). */
export interface UpstreamReply extends SmtpReply {
  recipients: { address: string; reply: SmtpReply }[];
}

/** The same reply for every recipient: the transaction failed or succeeded as a whole. */
export function forAll(envelope: Envelope, reply: SmtpReply): UpstreamReply {
  return { ...reply, recipients: envelope.to.map((address) => ({ address, reply })) };
}

export interface Upstream {
  readonly traits: UpstreamTraits;
  /** Short description for logs: "smtp relay.example.net:587" or "file outbox". */
  readonly name: string;
  /** Resolves once `traits` are worth reading: what the upstream announced is known, or waiting longer would not help. */
  ready(): Promise<void>;
  /** `message` may be read more than once (a retry, another host), each time afresh. */
  deliver(envelope: Envelope, message: Octets): Promise<UpstreamReply>;
  close(): Promise<void>;
}

/** `mx`: how the relay itself is reached, so that no MX leads back to it. */
export function createUpstream(config: UpstreamConfig, logger: Logger, mx: MxOptions = {}): Upstream {
  if (config.type === 'mx') return new MxUpstream(config, logger, mx);
  if (config.type === 'file') return new FileUpstream(config);
  // Unset, EHLO gives the relay's own name (listen.hostname, else the machine's), never nodemailer's
  // "[127.0.0.1]" that it falls back to for a host name without a dot.
  return new SmtpUpstream({ ...config, name: config.name ?? mx.relay?.().names[0] ?? osHostname() }, logger);
}
