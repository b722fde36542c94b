// Where signed mail goes next. Every upstream answers like an SMTP server:
// a code and a text, which sync mode hands back to the client unchanged.
import type { UpstreamConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { UpstreamTraits } from '../pipeline/pipeline.ts';
import { FileUpstream } from './file-upstream.ts';
import { MxUpstream } from './mx-upstream.ts';
import { SmtpUpstream } from './smtp-upstream.ts';

export interface Envelope {
  /** Envelope sender; '' for the null sender (bounces, auto-replies). */
  from: string;
  to: string[];
}

export interface UpstreamReply {
  code: number;
  /** Reply text without the code, e.g. "2.0.0 Ok: queued as 4Xyz". */
  text: string;
}

export interface Upstream {
  readonly traits: UpstreamTraits;
  /** Short description for logs: "smtp relay.example.net:587" or "file outbox". */
  readonly name: string;
  /** Resolves once `traits` are worth reading: what the upstream announced is known, or waiting longer would not help. */
  ready(): Promise<void>;
  deliver(envelope: Envelope, message: Buffer): Promise<UpstreamReply>;
  close(): Promise<void>;
}

export function createUpstream(config: UpstreamConfig, logger: Logger): Upstream {
  if (config.type === 'mx') return new MxUpstream(config, logger);
  return config.type === 'smtp' ? new SmtpUpstream(config, logger) : new FileUpstream(config);
}
