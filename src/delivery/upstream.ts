// Where signed mail goes next. Every upstream answers like an SMTP server:
// one reply for the transaction, which sync mode hands back to the client
// unchanged, and one per recipient, which the queue records.
import type { UpstreamConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { PreparationDeps } from './hop-preparation.ts';
import type { Octets } from '../message/octets.ts';
import type { UpstreamTraits } from '../pipeline/pipeline.ts';
import type { SmtpReply } from '../smtp/reply.ts';
import { FileUpstream } from './file-upstream.ts';
import { MxUpstream } from './mx-upstream.ts';
import { SmtpUpstream } from './smtp-upstream.ts';

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

/** A DKIM signature the relay added (d=, s=): what is replaced when the message is signed again for a hop. */
export interface OwnSignature {
  domain: string;
  selector: string;
}

export interface Upstream {
  readonly traits: UpstreamTraits;
  /** Short description for logs: "smtp relay.example.net:587" or "file outbox". */
  readonly name: string;
  /** Resolves once `traits` are worth reading: what the upstream announced is known, or waiting longer would not help. */
  ready(): Promise<void>;
  /**
   * `message` may be read more than once (a retry, another host), each time afresh.
   * `signedBy`: the relay's own signatures on it ([] when it went unsigned), for a hop
   * it must be re-encoded for; not given, such a hop gets it later (deferred).
   */
  deliver(envelope: Envelope, message: Octets, signedBy?: readonly OwnSignature[]): Promise<UpstreamReply>;
  close(): Promise<void>;
}

/** `preparation`: what the smart host needs to sign a message again when its connection takes less than it was signed for. */
export function createUpstream(config: UpstreamConfig, logger: Logger, preparation?: PreparationDeps): Upstream {
  if (config.type === 'mx') return new MxUpstream(config, logger);
  return config.type === 'smtp' ? new SmtpUpstream(config, logger, { preparation }) : new FileUpstream(config);
}
