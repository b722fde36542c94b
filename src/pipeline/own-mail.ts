// Mail the relay writes itself: delivery status notifications (RFC 3464) and
// rotation notices. Each one is signed and self-checked by processMessage like
// any relayed message, then handed over with the null sender, so that no
// notice is ever sent about a notice (RFC 5321 §4.5.5).
//
//   const mail = ownMail({ store, config, traits, hostname }, handOver);
//   const sent = await mail.send(message, 'postmaster@example.com');
//
// Where it is handed over is the one thing that differs, and the composition
// root (daemon.ts) picks it once: the queue in queue mode, so it is retried,
// logged and never lost like the mail it reports on (queue/notices.ts).
import type { Octets } from '../message/octets.ts';
import { replyLine } from '../smtp/reply.ts';
import { processMessage, type PipelineContext, type UpstreamTraits } from './pipeline.ts';

export type OwnMailResult = { id: string; signatures: string[] } | { refused: string };

export interface OwnMail {
  /**
   * Signs `message` and hands it over to `to`: `id` says where it went (the
   * queue id, or the upstream's reply); `refused` when the pipeline refuses it
   * (its From: domain has no usable key). Throws when it was not handed over.
   */
  send(message: Buffer, to: string): Promise<OwnMailResult>;
}

/** Takes a signed message to `to` with the null sender; returns how it is known from then on. Throws when it did not take it. */
export type HandOver = (message: Octets, to: string, signatures: readonly { domain: string; selector: string }[]) => Promise<string>;

export interface OwnMailDeps {
  store: PipelineContext['store'];
  config: PipelineContext['config'];
  hostname: string;
  /** What the next hop takes, read when a message is signed. */
  traits: () => UpstreamTraits | Promise<UpstreamTraits>;
}

export function ownMail(deps: OwnMailDeps, handOver: HandOver): OwnMail {
  return {
    async send(message, to) {
      const outcome = await processMessage(message, { store: deps.store, config: deps.config, upstream: await deps.traits(), hostname: deps.hostname });
      if (outcome.action === 'refuse') return { refused: replyLine(outcome.reply) };
      const id = await handOver(outcome.message, to, outcome.signatures);
      return { id, signatures: outcome.signatures.map((s) => `d=${s.domain} s=${s.selector}`) };
    },
  };
}
