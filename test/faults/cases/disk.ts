// `queue.dir` on a small tmpfs that fills up: during intake (452, nothing
// acknowledged is lost), and while deliveries are written down; then the
// space comes back and so does the relay.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { accepted, runLoad, type Outcome } from '../support/load.ts';
import { describeReplies, everyAcceptedDelivered, logLines, relayAndHost, replyText, stillUp, type CaseContext } from '../support/kit.ts';
import { cli, healthz, settle } from '../support/relay.ts';
import { queuedMessages } from '../../helpers/queued.ts';

const LOAD = { count: 50, sessions: 5 };

/** A 16 MiB tmpfs at `dir`, unmounted at the end. */
function smallDisk(ctx: CaseContext, dir: string): void {
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0700', 'tmpfs', dir]);
  ctx.cleanup.push(() => execFileSync('umount', ['-l', dir]));
}

/** Writes a file until the file system has no block left; returns its path. */
function fill(dir: string): string {
  const file = join(dir, 'filler');
  const fd = openSync(file, 'w');
  try {
    for (const size of [1 << 20, 1 << 12, 1 << 9]) {
      const chunk = Buffer.alloc(size, 0x61);
      try {
        for (let i = 0; i < 100_000; i++) writeSync(fd, chunk);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      }
    }
  } finally {
    closeSync(fd);
  }
  return file;
}

const isTemporary = (o: Outcome) => o.reply === '' || /^[24]/.test(o.reply);

export async function fullAtIntake(ctx: CaseContext): Promise<void> {
  const spool = join(ctx.dir, 'spool');
  smallDisk(ctx, spool);
  const { relay, host } = await relayAndHost(ctx);
  const filler = fill(spool);

  const full = await runLoad({ port: relay.port(), tag: 'full', ...LOAD });
  assert.ok(full.every(isTemporary), `only 250 or 4xx while the disk is full: ${describeReplies(full)}`);
  const refused = replyText(full, '452');
  assert.ok(refused, `452 while the disk is full: ${describeReplies(full)}`);
  assert.ok(logLines(relay, 'refused with 452').length > 0, 'the log says why mail is refused');
  // Measured, not required: the probe file is empty, and a full tmpfs still takes an empty file.
  const health = await healthz(relay);
  const spoolCheck = health.body.checks?.find((c) => c.name === 'spool');
  stillUp(relay);

  rmSync(filler);
  const after = await runLoad({ port: relay.port(), tag: 'after', ...LOAD });
  assert.deepEqual(
    after.filter((o) => !o.reply.startsWith('250')),
    [],
    'every message is taken once there is space',
  );
  await everyAcceptedDelivered(ctx, host, [...full, ...after]);
  stillUp(relay);
  ctx.row.does = `\`452\` while full and the log says why (\`/healthz\` spool check: ${spoolCheck?.ok ? 'passes' : 'fails'}); takes mail again as soon as there is space`;
  ctx.row.sees = `full: ${describeReplies(full)} (\`${refused}\`); then: ${describeReplies(after)}`;
}

/** The Message-IDs of the messages `queue list` shows, read from queue.db or their spool files. */
async function queuedMessageIds(config: string, dir: string, spool: string): Promise<string[]> {
  const run = await cli(['queue', 'list', '--json'], config, dir);
  assert.equal(run.code, 0, run.stderr);
  const { messages } = JSON.parse(run.stdout) as { messages: { id: string }[] };
  const octets = new Map(queuedMessages(spool).map((m) => [m.id, m.octets]));
  return messages.map((m) => /^Message-ID:\s*<([^>]+)>/im.exec(octets.get(m.id)?.toString('latin1') ?? '')?.[1] ?? m.id);
}

export async function fullAtDelivery(ctx: CaseContext): Promise<void> {
  const spool = join(ctx.dir, 'spool');
  smallDisk(ctx, spool);
  const { relay, host, config } = await relayAndHost(ctx, {}, 'defer');
  const outcomes = await runLoad({ port: relay.port(), tag: 'queued', ...LOAD });
  await host.until(() => host.counts.connections >= 2, 30_000, 'a delivery attempt');
  const filler = fill(spool);
  const mark = relay.output().length;

  // The host takes the mail now; what the relay writes down about it meets a full disk.
  host.behaviour = 'accept';
  host.dropAll();
  // Until the relay has met the full disk: a log line naming it.
  await relay.waitFor('disk is full', 20_000, mark);
  stillUp(relay);
  const complaints = relay
    .output()
    .slice(mark)
    .split('\n')
    .filter((l) => /SQLITE_FULL|ENOSPC|disk is full/i.test(l)).length;

  rmSync(filler);
  // Delivered, or still in the queue to be tried again: never neither. An attempt whose
  // result could not be written keeps its claim on the message until the claim's lease ends.
  const tally = await settle(host, outcomes, 20_000);
  const queued = new Set(await queuedMessageIds(config, ctx.dir, spool));
  const lost = tally.lost.filter((id) => !queued.has(id));
  ctx.row.accepted = tally.accepted;
  ctx.row.lost = lost.length;
  ctx.row.duplicates = tally.duplicates;
  assert.deepEqual(lost, [], `answered 250, never delivered and no longer queued`);
  const after = await runLoad({ port: relay.port(), tag: 'after', ...LOAD });
  assert.deepEqual(
    after.filter((o) => !o.reply.startsWith('250')),
    [],
    'every message is taken once there is space',
  );
  await host.until(() => accepted(after).every((id) => host.received.some((m) => m.messageId === id)), 30_000, 'the mail taken after the disk had space again');
  stillUp(relay);
  const waiting = tally.lost.length;
  ctx.row.does = `the log names the full disk (${complaints} line${complaints === 1 ? '' : 's'}); once there is space it delivers${waiting > 0 ? `; ${waiting} message${waiting === 1 ? '' : 's'} stay${waiting === 1 ? 's' : ''} queued, still claimed by the attempt whose result could not be written` : ' everything'}`;
  ctx.row.sees = `${describeReplies(outcomes)}; then ${describeReplies(after)}`;
}
