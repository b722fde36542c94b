// What the intake thread and the delivery thread tell each other. Plain
// data only: each message is copied by the structured clone algorithm.
import type { Config } from '../config/schema.ts';
import type { BackgroundTask } from '../common/background-tasks.ts';
import type { UpstreamTraits } from '../pipeline/pipeline.ts';
import type { SmtpReply } from '../smtp/reply.ts';
import type { Claim } from './queue-index.ts';

/** What the delivery thread is started with (its workerData). */
export interface DeliverySetup {
  config: Config;
  hostname: string;
  /** Where the relay listens, so that no MX leads back to it. */
  listeners: { host: string; port: number }[];
  workers: number;
  /** The main thread's log level: the thread's lines are written by the main thread's logger. */
  logLevel: string;
}

export type ToDelivery = { type: 'claims'; claims: Claim[] } | { type: 'wake' } | { type: 'stop'; timeoutMs: number };

/** Things that happened in the delivery thread that the intake thread counts, shows or learns. */
export type DeliveryEvent =
  | { type: 'delivered'; domain: string | null; latencySeconds: number | undefined }
  | { type: 'deferred'; domain: string | null }
  | { type: 'bounced'; domain: string | null }
  | { type: 'task'; task: BackgroundTask; cause: string | null; logged: boolean }
  | { type: 'reply'; reply: SmtpReply }
  /** One log line, JSON, as pino made it. */
  | { type: 'log'; line: string };

export type FromDelivery =
  | { type: 'events'; events: DeliveryEvent[]; traits: UpstreamTraits }
  /** How many more claims the manager would take; `received`: claims it has been handed so far. */
  | { type: 'room'; room: number; received: number }
  | { type: 'stopped' };
