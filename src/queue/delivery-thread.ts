// The main thread's handle on the delivery thread (delivery-worker.ts): the
// queue manager's surface (start, wake, stop), the claims intake makes handed
// over as plain data, and what the thread reports applied here, where the
// metrics, the supervisor and the upstream's health live.
import { Worker } from 'node:worker_threads';
import { writeLine, type Logger } from '../common/logger.ts';
import type { Supervisor } from '../common/supervisor.ts';
import type { UpstreamTraits } from '../pipeline/pipeline.ts';
import type { SmtpReply } from '../smtp/reply.ts';
import type { DeliveryEvent, DeliverySetup, FromDelivery, ToDelivery } from './delivery-messages.ts';
import type { DeliveryCounter } from './manager.ts';
import type { QueueIndex } from './queue-index.ts';

/** As the manager's own (manager.ts): far beyond one attempt. */
const LEASE_MS = 15 * 60_000;
/** Beyond stop's timeout, how long the thread may take to close its files before it is ended. */
const CLOSE_GRACE_MS = 5_000;

export interface DeliveryThreadOptions {
  setup: DeliverySetup;
  /** The main thread's connection, where intake records messages and claims them. */
  index: QueueIndex;
  logger: Logger;
  supervisor: Supervisor;
  counter: DeliveryCounter;
  /** Each reply of the upstream (its health). */
  onReply?: (reply: SmtpReply) => void;
  /** What the upstream learned (8BITMIME, SMTPUTF8), as the thread last reported it. */
  onTraits?: (traits: UpstreamTraits) => void;
}

export class DeliveryThread {
  readonly #o: DeliveryThreadOptions;
  #worker: Worker | undefined;
  #room = 0;
  #sent = 0;
  #received = 0;
  #stopped: Promise<void> | undefined;
  #wakeDue = false;
  #claimsPosted = false;

  constructor(options: DeliveryThreadOptions) {
    this.#o = options;
  }

  start(): void {
    const { index, setup } = this.#o;
    this.#room = setup.workers;
    const worker = new Worker(new URL('./delivery-worker.ts', import.meta.url), { workerData: setup });
    worker.on('message', (message: FromDelivery) => this.#heard(message));
    worker.on('error', (err) => this.#o.logger.error({ err: err.message }, 'delivery thread failed'));
    this.#worker = worker;
    index.claimOnIntake({
      leaseMs: LEASE_MS,
      room: () => this.#room - (this.#sent - this.#received),
      take: (claims) => {
        this.#sent += claims.length;
        this.#claimsPosted = true;
        this.#post({ type: 'claims', claims });
      },
    });
  }

  /**
   * Told after each intake commit, before its claims are taken: claims wake
   * the thread themselves, so a wake goes only for a commit that brought none
   * (one message each between two threads is a cost the intake pays).
   */
  wake(): void {
    if (this.#wakeDue) return;
    this.#wakeDue = true;
    this.#claimsPosted = false;
    queueMicrotask(() => {
      this.#wakeDue = false;
      if (!this.#claimsPosted) this.#post({ type: 'wake' });
    });
  }

  /** As QueueManager.stop: attempts in flight get `timeoutMs`, claims not attempted are handed back. */
  stop(timeoutMs: number): Promise<void> {
    this.#o.index.claimOnIntake(undefined);
    const worker = this.#worker;
    if (!worker) return Promise.resolve();
    this.#stopped ??= new Promise<void>((resolve) => {
      const timer = setTimeout(() => void worker.terminate(), timeoutMs + CLOSE_GRACE_MS);
      worker.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      this.#post({ type: 'stop', timeoutMs });
    });
    return this.#stopped;
  }

  #post(message: ToDelivery): void {
    this.#worker?.postMessage(message);
  }

  #heard(message: FromDelivery): void {
    if (message.type === 'room') {
      this.#room = message.room;
      this.#received = message.received;
    } else if (message.type === 'events') {
      for (const event of message.events) this.#apply(event);
      this.#o.onTraits?.(message.traits);
    }
  }

  #apply(event: DeliveryEvent): void {
    const { counter, supervisor } = this.#o;
    if (event.type === 'delivered') counter.delivered(event.domain, event.latencySeconds);
    else if (event.type === 'deferred') counter.deferred(event.domain);
    else if (event.type === 'bounced') counter.bounced(event.domain);
    else if (event.type === 'reply') this.#o.onReply?.(event.reply);
    else if (event.type === 'log') writeLine(this.#o.logger, event.line);
    else if (event.cause === null) supervisor.succeeded(event.task);
    else supervisor.failed(event.task, new Error(event.cause), { logged: event.logged });
  }
}
