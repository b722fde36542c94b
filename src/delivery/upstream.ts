// Where signed mail goes next. Every upstream answers like an SMTP server:
// one reply for the transaction, which sync mode hands back to the client
// unchanged, and one per recipient, which the queue records. The upstreams
// themselves are in their own files; createUpstream (create-upstream.ts) picks one.
import type { Octets } from '../message/octets.ts';
import type { RcptDsn } from '../smtp/nodemailer-internals.ts';
import type { UpstreamTraits } from '../pipeline/pipeline.ts';
import type { SmtpReply } from '../smtp/reply.ts';

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
