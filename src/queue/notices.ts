// Sending a delivery status notification: built (RFC 3464), signed through
// the same pipeline as any message, and taken into the same queue with the
// null sender (RFC 5321 §4.5.5), so it is retried, logged and never lost
// like the mail it reports on. Not to a sender the submitting client could
// not use, and not more often to one address than bounce.maxPerAddress per
// bounce.addressWindow (see suppression.ts and notice-rate.ts).
import { buildDsn, type DsnAction, type DsnRecipient } from '../bounce/dsn.ts';
import { bounceFromAddress } from '../bounce/settings.ts';
import type { NoticeRate } from '../bounce/notice-rate.ts';
import { planNotices } from '../bounce/suppression.ts';
import type { Config } from '../config/schema.ts';
import type { KeyStore } from '../keys/key-store.ts';
import type { Logger } from '../common/logger.ts';
import { readHeaderBlock } from '../message/incoming.ts';
import { readOctets, type Octets } from '../message/octets.ts';
import { ownMail, type OwnMail } from '../pipeline/own-mail.ts';
import type { UpstreamTraits } from '../pipeline/pipeline.ts';
import { acceptMessage } from './accept.ts';
import type { QueuedMessage, QueuedRecipient, QueueIndex } from './queue-index.ts';
import type { Spool } from './spool.ts';
import type { SmtpReply } from '../smtp/reply.ts';

export interface NoticeDeps {
  config: Pick<Config, 'signing' | 'selfCheck' | 'headers' | 'normalize' | 'bounce' | 'queue'>;
  store: KeyStore;
  traits: () => UpstreamTraits;
  hostname: string;
  queue: { spool: Spool; index: QueueIndex };
  logger: Logger;
  maxAgeMs: number;
  now: () => number;
  /** Notices per address: kept by the caller from one attempt to the next. */
  rate: NoticeRate;
}

export interface NoticeItem {
  recipient: QueuedRecipient;
  action: DsnAction;
  reply: SmtpReply;
  expired: boolean;
}

/** Sends what planNotices allows; returns the queue ids of the notices. Throws when one cannot be queued (the caller retries later). */
export async function sendNotices(deps: NoticeDeps, message: QueuedMessage, octets: Octets, items: readonly NoticeItem[]): Promise<string[]> {
  // Only an original that may go back whole is read whole; of a larger one, its header block.
  const limit = deps.config.bounce.returnContentLimit;
  const original = octets.size <= limit ? await readOctets(octets) : await readHeaderBlock(octets, deps.config.headers.maxSize + 4);
  const outcomes = items.map((item) => ({ recipient: item, action: item.action, notify: item.recipient.notify ?? undefined }));
  const plan = planNotices(message.sender, original, outcomes, message.senderDomains);
  for (const s of plan.suppressed) {
    const allowed = s.reason === 'sender-not-allowed' ? { sender: message.sender, allowed: message.senderDomains } : {};
    deps.logger.info({ id: message.id, to: s.recipient.recipient.address, action: s.action, reason: s.reason, ...allowed }, 'no delivery status notification');
  }
  const ids: string[] = [];
  for (const notice of plan.notices) {
    const now = new Date(deps.now());
    const rate = deps.rate.take(message.sender, now.getTime());
    if (rate !== 'send') {
      const { maxPerAddress, addressWindow } = deps.config.bounce;
      // One line per address and window; the recipients' own results are logged as bounced or deferred anyway.
      if (rate === 'first-excess')
        deps.logger.warn(
          { id: message.id, to: message.sender, max: maxPerAddress, window: addressWindow },
          'delivery status notifications to this address suppressed for the rest of the window (bounce.maxPerAddress)',
        );
      continue;
    }
    const recipients: DsnRecipient[] = notice.recipients.map((item) => ({
      address: item.recipient.address,
      originalRecipient: item.recipient.orcpt ?? undefined,
      reply: item.reply,
      // RFC 3464 §2.3.5: the server whose reply this is, when one answered.
      remoteMta: item.reply.remote?.host,
      expired: item.expired,
      lastAttempt: now,
    }));
    const dsn = buildDsn({
      action: notice.action,
      recipients,
      original,
      originalSize: octets.size,
      envelope: { sender: message.sender, envid: message.envid, ret: message.ret, arrival: new Date(message.receivedAt) },
      reportingMta: deps.hostname,
      from: bounceFromAddress(deps.config.bounce, deps.hostname),
      returnContentLimit: deps.config.bounce.returnContentLimit,
      date: now,
      willRetryUntil: notice.action === 'delayed' ? new Date(message.receivedAt + deps.maxAgeMs) : undefined,
    });
    let queued: Awaited<ReturnType<OwnMail['send']>>;
    try {
      queued = await queuedOwnMail(deps).send(dsn.message, dsn.rcptTo);
    } catch (err) {
      deps.rate.refund(message.sender, now.getTime());
      throw err;
    }
    if ('refused' in queued) {
      // Nothing the sender could mend: the notice itself cannot be signed as configured (bounce.from's domain, its key).
      deps.logger.error(
        { id: message.id, to: dsn.rcptTo, reply: queued.refused },
        "delivery status notification not sent: the pipeline refused it; check bounce.from and its domain's key",
      );
      continue;
    }
    ids.push(queued.id);
    deps.logger.info(
      { id: queued.id, about: message.id, action: notice.action, to: dsn.rcptTo, recipients: recipients.map((r) => r.address), signatures: queued.signatures },
      'delivery status notification queued',
    );
  }
  return ids;
}

export type OwnMessageDeps = Pick<NoticeDeps, 'config' | 'store' | 'traits' | 'hostname' | 'queue'>;

/**
 * The relay's own mail (notices) through its queue: signed and self-checked
 * by the pipeline like any message, then queued with the null sender, so it
 * is retried like the mail it reports on. send() throws when it cannot be
 * queued (spool full); `refused` when the pipeline refuses it.
 */
export function queuedOwnMail(deps: OwnMessageDeps): OwnMail {
  return ownMail(deps, async (message, to, signatures) => {
    const stored = await acceptMessage(deps.queue, message, {
      sender: '',
      client: 'dkim-relay',
      signatures: signatures.map((s) => ({ domain: s.domain, selector: s.selector })),
      recipients: [{ address: to }],
    });
    return stored.id;
  });
}
