// Where the relay's own mail (pipeline/own-mail.ts) is handed over: its queue
// in queue mode (queue/notices.ts), as delivery status notifications are.
//
// Sync mode has no queue to hand it to: no index, no retry timer, and a
// message left in the spool would never be sent. So its own mail goes
// straight to the upstream, and what the upstream does not take is reported
// to the caller, who tries again later (the rotation scheduler plans an
// unsent notice again at its next pass). Sync mode writes no delivery status
// notifications (the client hears each upstream reply itself), so the
// rotation notices are all the own mail it has.
import type { Upstream } from '../delivery/upstream.ts';
import { ownMail, type OwnMail, type OwnMailDeps } from '../pipeline/own-mail.ts';
import { queuedOwnMail, type OwnMessageDeps } from '../queue/notices.ts';
import { replyLine } from '../smtp/reply.ts';

/** queue: the relay's spool and index (queue mode); unset in sync mode. */
export function ownMailOf(
  deps: Pick<OwnMessageDeps, 'config' | 'store' | 'hostname'>,
  upstream: Upstream,
  queue: OwnMessageDeps['queue'] | undefined,
): OwnMail {
  if (queue) return queuedOwnMail({ ...deps, traits: () => upstream.traits, queue });
  return directOwnMail(deps, upstream);
}

/** Signed, then delivered by the upstream with the null sender; throws unless it answered 2xx. */
export function directOwnMail(deps: Omit<OwnMailDeps, 'traits'>, upstream: Upstream): OwnMail {
  const traits = async () => {
    await upstream.ready();
    return upstream.traits;
  };
  return ownMail({ ...deps, traits }, async (message, to, signatures) => {
    const reply = await upstream.deliver({ from: '', to: [to] }, message, signatures);
    if (reply.code >= 400) throw new Error(`the upstream answered ${replyLine(reply)}`);
    return replyLine(reply);
  });
}
