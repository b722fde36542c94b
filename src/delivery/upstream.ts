// Where signed mail goes next. Every upstream answers like an SMTP server:
// one reply for the transaction, which sync mode hands back to the client
// unchanged, and one per recipient, which the queue records.
import type { UpstreamConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { Octets } from '../message/octets.ts';
import type { UpstreamTraits } from '../pipeline/pipeline.ts';
import type { SmtpReply } from '../smtp/reply.ts';
import { FileUpstream } from './file-upstream.ts';
import { MxUpstream } from './mx-upstream.ts';
import { SmtpUpstream } from './smtp-upstream.ts';
import type { Supervisor } from '../relay/supervisor.ts';

export interface Envelope {
  /** Envelope sender; '' for the null sender (bounces, auto-replies). */
  from: string;
  to: string[];
  /** RFC 3461 parameters, passed on when the upstream announces DSN; NOTIFY and ORCPT apply to every recipient of `to`. */
  dsn?: EnvelopeDsn | undefined;
}

export interface EnvelopeDsn {
  ret?: 'FULL' | 'HDRS' | undefined;
  envid?: string | undefined;
  notify?: string[] | undefined;
  orcpt?: string | undefined;
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

/** `supervisor`: where the smtp upstream's extension probe reports its failures. */
export function createUpstream(config: UpstreamConfig, logger: Logger, supervisor?: Supervisor): Upstream {
  if (config.type === 'mx') return new MxUpstream(config, logger);
  return config.type === 'smtp' ? new SmtpUpstream(config, logger, Date.now, supervisor) : new FileUpstream(config);
}
