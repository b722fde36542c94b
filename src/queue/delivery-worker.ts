// The delivery thread: a queue manager and its upstream on an event loop of
// their own (Postfix's qmgr and smtp apart from smtpd), so that delivery
// goes on while intake keeps the main thread busy, and the other way round.
// It opens its own connection to queue.db, its own spool and key store, and
// reports to the main thread what the metrics, the background tasks' health
// and the upstream's health need there (delivery-messages.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { durationSeconds } from '../config/duration.ts';
import { createLineLogger, type Logger } from '../common/logger.ts';
import { causeOf, type BackgroundTask } from '../common/background-tasks.ts';
import { Supervisor } from '../common/supervisor.ts';
import { createUpstream } from '../delivery/create-upstream.ts';
import type { Upstream } from '../delivery/upstream.ts';
import { openKeyStore } from '../keys/open-store.ts';
import { retryPolicy } from './backoff.ts';
import type { DeliveryEvent, DeliverySetup, FromDelivery, ToDelivery } from './delivery-messages.ts';
import { QueueManager } from './manager.ts';
import { QueueIndex } from './queue-index.ts';
import { Spool } from './spool.ts';

const port = parentPort!;
const setup = workerData as DeliverySetup;
const post = (message: FromDelivery) => port.postMessage(message);

/** Events of one turn of the loop go in one message. */
let events: DeliveryEvent[] = [];
let upstream: Upstream | undefined;
function report(event: DeliveryEvent): void {
  if (events.length === 0) setImmediate(flush);
  events.push(event);
}
function flush(): void {
  if (events.length === 0) return;
  post({ type: 'events', events, traits: upstream!.traits });
  events = [];
}

/** The main thread's supervisor keeps the tasks' health; this one passes each result on. */
class PostedSupervisor extends Supervisor {
  override failed(task: BackgroundTask, err: unknown, options: { logged?: boolean } = {}): void {
    report({ type: 'task', task, cause: causeOf(err), logged: options.logged ?? false });
  }
  override succeeded(task: BackgroundTask): void {
    report({ type: 'task', task, cause: null, logged: false });
  }
}

// Listened to at once: what arrives while the thread opens its files waits here.
const early: ToDelivery[] = [];
let handle = (message: ToDelivery) => void early.push(message);
port.on('message', (message: ToDelivery) => handle(message));

const { config, hostname, listeners } = setup;
const logger: Logger = createLineLogger(setup.logLevel, (line) => report({ type: 'log', line }));
const supervisor = new PostedSupervisor({ logger });
const store = await openKeyStore(config.keys, {
  onRefreshError: (err) => supervisor.failed('key-store', err),
  startUnreachable: true,
});
const direct = createUpstream(config.delivery.upstream, logger, {
  mx: { relay: () => ({ names: [hostname], listeners }) },
  preparation: { store, config, hostname },
  supervisor,
});
upstream = {
  get traits() {
    return direct.traits;
  },
  name: direct.name,
  ready: () => direct.ready(),
  async deliver(envelope, message, signedBy) {
    const reply = await direct.deliver(envelope, message, signedBy);
    report({ type: 'reply', reply: { code: reply.code, enhanced: reply.enhanced, text: reply.text } });
    return reply;
  },
  close: () => direct.close(),
};
const spool = new Spool(config.queue.dir);
const index = QueueIndex.open(`${config.queue.dir}/queue.db`, { onCommit: () => manager.wake() });
let received = 0;
const manager: QueueManager = new QueueManager({
  spool,
  index,
  upstream,
  logger,
  policy: retryPolicy(config.queue),
  workers: setup.workers,
  corruptRetentionMs: durationSeconds(config.queue.corruptRetention) * 1000,
  notices: { config, store, traits: () => upstream.traits, hostname },
  supervisor,
  counter: {
    delivered: (domain, latencySeconds) => report({ type: 'delivered', domain, latencySeconds }),
    deferred: (domain) => report({ type: 'deferred', domain }),
    bounced: (domain) => report({ type: 'bounced', domain }),
  },
  postedClaims: { onRoom: (room) => post({ type: 'room', room, received }) },
});

async function stop(timeoutMs: number): Promise<void> {
  await manager.stop(timeoutMs);
  await upstream!.close();
  index.close();
  await store.close();
  flush();
  post({ type: 'stopped' });
  port.close();
}

handle = (message) => {
  if (message.type === 'claims') {
    received += message.claims.length;
    manager.take(message.claims);
  } else if (message.type === 'wake') manager.wake();
  else void stop(message.timeoutMs);
};
manager.start();
for (const message of early.splice(0)) handle(message);
