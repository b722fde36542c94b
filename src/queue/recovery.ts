// Start-up recovery: makes the spool and the index agree again after a crash,
// before the listener accepts anything (a message being written would look
// like the leftovers of a crash). Nothing is delivered twice on its account,
// and nothing disappears without a log line:
//
// - tmp/ files: writes a crash interrupted. No client was told 250 for
//   them (that needs the file renamed into msg/): removed.
// - A message kept in the index (small ones) has no file: its octets were
//   committed with its rows, and go with them.
// - msg/ files without index rows: the crash came between the file's fsync
//   and the rows' commit, so the client got no 250 and will send again; or
//   a finished message's rows were removed and its unlink was lost. Nobody
//   is owed a delivery, so they are not queued; but they are moved to
//   corrupt/ rather than deleted, because a lost or replaced queue.db would
//   make every accepted message look like this, and those bytes must not be
//   destroyed by a program's guess.
// - rows whose file is missing, or whose file is shorter or longer than
//   accepted: the message was accepted but cannot be sent as accepted. It is
//   held (never sent empty or cut), named in the log, and released by itself
//   at a later start once the file is back (a spool disk mounted late, a
//   restore from backup); `queue delete` drops it for good.
// - rows whose recipients are all delivered or bounced: their removal (not
//   synced) was lost; removed again, with the file if it is still there.
// - recipients left `delivering` by the crashed process: due again now.
//   (An attempt the upstream accepted just before the crash is attempted
//   again: SMTP cannot tell, RFC 5321 §6.1 prefers a duplicate to a loss.)
import type { Logger } from '../common/logger.ts';
import type { QueueIndex } from './queue-index.ts';
import type { Spool } from './spool.ts';

export const HOLD_FILE_MISSING = 'message file missing from the spool';
export const HOLD_FILE_SIZE = 'message file size differs from the size accepted';

export interface RecoveryReport {
  /** Interrupted writes removed from tmp/. */
  tempRemoved: number;
  /** Files of msg/ with no index rows, moved to corrupt/. */
  movedToCorrupt: number;
  /** Messages held because their file is missing. */
  heldMissing: number;
  /** Messages held because their file has the wrong size. */
  heldWrongSize: number;
  /** Messages held by an earlier recovery whose file is back: released. */
  released: number;
  /** Messages whose recipients were all done, found again after a lost removal: removed. */
  finishedRemoved: number;
  /** Recipients of crashed attempts made due again. */
  reclaimed: number;
  /** Ids of the messages held by this recovery (for the log and the administrator). */
  heldIds: string[];
  /** Queue depth after recovery. */
  messages: number;
  pending: number;
}

/** Most ids named in the summary line; the rest are counted. */
const IDS_IN_LOG = 50;

export async function recoverQueue(spool: Spool, index: QueueIndex, logger: Logger): Promise<RecoveryReport> {
  const report: RecoveryReport = {
    tempRemoved: 0,
    finishedRemoved: 0,
    movedToCorrupt: 0,
    heldMissing: 0,
    heldWrongSize: 0,
    released: 0,
    reclaimed: 0,
    heldIds: [],
    messages: 0,
    pending: 0,
  };

  for (const name of await spool.listTemp()) {
    await spool.removeTemp(name);
    report.tempRemoved++;
  }

  const rows = index.allMessages();
  const known = new Set(rows.map((r) => r.id));
  const files = await spool.list();
  for (const name of [...files.ids.filter((id) => !known.has(id)).map((id) => `${id}.eml`), ...files.other]) {
    await spool.moveToCorrupt(name);
    report.movedToCorrupt++;
  }

  for (const row of rows) {
    if (index.finishedCounts(row.id)) {
      // Every recipient was delivered or bounced; only its removal was lost (the process stopped first, or a power cut undid it).
      index.remove(row.id);
      if (row.inlineSize === null) await spool.delete(row.id);
      report.finishedRemoved++;
      continue;
    }
    const size = row.inlineSize ?? (await spool.size(row.id));
    const problem = size === undefined ? HOLD_FILE_MISSING : size !== row.size ? HOLD_FILE_SIZE : undefined;
    if (problem !== undefined) {
      if (row.hold !== problem) index.hold(row.id, problem);
      report.heldIds.push(row.id);
      if (problem === HOLD_FILE_MISSING) report.heldMissing++;
      else report.heldWrongSize++;
    } else if (row.hold === HOLD_FILE_MISSING || row.hold === HOLD_FILE_SIZE) {
      index.release(row.id);
      report.released++;
    }
  }

  report.reclaimed = index.resetDelivering();
  const depth = index.depth();
  report.messages = depth.messages;
  report.pending = depth.pending;

  const troubled = report.movedToCorrupt + report.heldMissing + report.heldWrongSize > 0;
  const { heldIds, ...counts } = report;
  logger[troubled ? 'error' : 'info'](
    {
      event: 'queue-recovery',
      ...counts,
      held: heldIds.length ? heldIds.slice(0, IDS_IN_LOG) : undefined,
      corrupt: report.movedToCorrupt ? `${spool.dir}/corrupt` : undefined,
    },
    troubled
      ? 'queue recovery: messages held because their file is missing or damaged, or files without index rows moved to corrupt/ — restore the files named in "held" and restart, or delete those messages'
      : 'queue recovery',
  );
  return report;
}
