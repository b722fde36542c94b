// Whether the smart host has been unavailable for a while: every delivery
// attempt is watched, and one that fails as a whole with a temporary reply
// (no connection, the session or our login refused: all 4xx, RFC 5321
// §4.2.1) starts the clock, which the next accepted transaction stops. The
// relay keeps accepting and queueing meanwhile; this is for the operator
// (/readyz, the status page, dkim_relay_upstream_failing_seconds).
import type { Octets } from '../message/octets.ts';
import { replyLine } from '../smtp/reply.ts';
import type { UpstreamTraits } from '../pipeline/pipeline.ts';
import type { Envelope, Upstream, UpstreamReply } from './upstream.ts';

export interface UpstreamState {
  /** "smtp relay.example.net:587". */
  name: string;
  /** Failing for longer than this (queue.retryAfter) is worth telling. */
  thresholdMs: number;
  /** Since when every attempt failed; null while it answers. */
  failingSince: number | null;
  /** The last failure's reply, e.g. "451 4.4.1 Upstream unavailable: …". */
  lastReply: string | null;
  now: number;
}

/** Failing for longer than the threshold: how long, in whole seconds; else null. */
export function failingFor(state: UpstreamState): number | null {
  if (state.failingSince === null) return null;
  const ms = state.now - state.failingSince;
  return ms > state.thresholdMs ? Math.floor(ms / 1000) : null;
}

/** A transaction that failed as a whole, temporarily: every recipient got the transaction's own 4xx. */
export function unavailable(reply: UpstreamReply): boolean {
  return reply.code >= 400 && reply.code < 500 && reply.recipients.every((r) => r.reply.code === reply.code && r.reply.text === reply.text);
}

export class UpstreamHealth {
  readonly #name: string;
  readonly #thresholdMs: number;
  readonly #now: () => number;
  #failingSince: number | null = null;
  #lastReply: string | null = null;

  constructor(name: string, thresholdMs: number, now: () => number = Date.now) {
    this.#name = name;
    this.#thresholdMs = thresholdMs;
    this.#now = now;
  }

  answered(reply: UpstreamReply): void {
    if (reply.code < 400) {
      this.#failingSince = null;
      this.#lastReply = null;
    } else if (unavailable(reply)) {
      this.#failingSince ??= this.#now();
      this.#lastReply = replyLine(reply);
    }
  }

  state(): UpstreamState {
    return { name: this.#name, thresholdMs: this.#thresholdMs, failingSince: this.#failingSince, lastReply: this.#lastReply, now: this.#now() };
  }
}

/** `upstream`, with each reply told to `health`. */
export function watchedUpstream(upstream: Upstream, health: UpstreamHealth): Upstream {
  return {
    get traits(): UpstreamTraits {
      return upstream.traits;
    },
    name: upstream.name,
    ready: () => upstream.ready(),
    async deliver(envelope: Envelope, message: Octets, signedBy?: Parameters<Upstream['deliver']>[2]): Promise<UpstreamReply> {
      const reply = await upstream.deliver(envelope, message, signedBy);
      health.answered(reply);
      return reply;
    },
    close: () => upstream.close(),
  };
}
