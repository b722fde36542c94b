// `dkim-relay queue …`, the real CLI on a real spool and queue.db filled the
// way the relay fills them (acceptMessage, claims and results recorded
// through QueueIndex): messages queued, deferred with a reply, held and
// partly delivered; text and --json output; hold, release, retry, flush and
// delete read back through QueueIndex; and a command run while another
// connection holds the write lock.
import { bufferOctets } from '../../src/message/octets.ts';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { acceptMessage } from '../../src/queue/accept.ts';
import { QueueIndex } from '../../src/queue/queue-index.ts';
import { Spool } from '../../src/queue/spool.ts';
import { tempDir } from '../helpers/tmp.ts';
import { until } from '../helpers/until.ts';
import { dkimRelay, NODE, type Run } from './support.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const LONG_REPLY = 'Upstream unavailable: connect ECONNREFUSED 192.0.2.1:25 (delivery.upstream.host mx.example.net, port 25) after 3 tries';

function shown(run: Run): string {
  return `exit ${run.code}\n--- stdout\n${run.stdout.slice(0, 6000)}\n--- stderr\n${run.stderr.slice(0, 2000)}`;
}

function json<T = any>(run: Run): T {
  assert.equal(run.code, 0, shown(run));
  try {
    return JSON.parse(run.stdout) as T;
  } catch {
    assert.fail(`stdout is not JSON:\n${shown(run)}`);
  }
}

/** stderr holds exactly one line. */
function oneLine(run: Run, pattern: RegExp): void {
  assert.equal(run.stderr.trimEnd().split('\n').length, 1, shown(run));
  assert.match(run.stderr, pattern, shown(run));
  assert.doesNotMatch(run.stderr, /\n\s+at /, 'a stack trace');
}

/** Over 128 KiB with `large`: a spool file in msg/; else kept in queue.db. */
function message(subject: string, large = subject !== 'queued'): Buffer {
  return Buffer.from(
    `DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=s1; h=from:to:subject; bh=x; b=y\r\n` +
      `From: a@example.com\r\nTo: b@example.net\r\nSubject: ${subject}\r\n\r\nHello.\r\n` +
      (large ? `${'x'.repeat(998)}\r\n`.repeat(140) : ''),
  );
}

interface Queue {
  dir: string;
  config: string;
  spoolDir: string;
  /** Messages: queued (small: in queue.db), deferred (with a reply), held, partly delivered (files in msg/). */
  ids: { queued: string; deferred: string; held: string; partly: string };
  cli(...args: string[]): Promise<Run>;
  /** A fresh connection to read back what the CLI did. */
  read<T>(look: (index: QueueIndex) => T): T;
}

async function setUp(): Promise<Queue> {
  const dir = tempDir('dkim-relay-queue-cli-');
  const spoolDir = join(dir, 'spool');
  const config = join(dir, 'dkim-relay.yaml');
  writeFileSync(config, `queue:\n  dir: ${spoolDir}\n`);
  const spool = new Spool(spoolDir);
  const index = QueueIndex.open(join(spoolDir, 'queue.db'));
  const now = Date.now();
  const base = { client: '192.0.2.10', signatures: [{ domain: 'example.com', selector: 's1' }] };

  // Deferred: one attempt, a temporary failure, next attempt in 30 minutes.
  const deferred = await acceptMessage({ spool, index }, bufferOctets(message('deferred')), {
    ...base,
    sender: 'a@example.com',
    receivedAt: now - 2 * HOUR,
    ret: 'FULL',
    envid: 'env-42',
    recipients: [{ address: 'b@example.net', orcpt: 'rfc822;b@example.net', notify: ['FAILURE', 'DELAY'] }],
  });
  const [d] = index.claimDue({ limit: 10, leaseMs: 10 * MINUTE });
  index.record(d!, [{ seq: 0, result: 'deferred', reply: { code: 451, enhanced: '4.4.1', text: LONG_REPLY }, nextAttemptAt: now + 30 * MINUTE }]);

  // Partly delivered: the first recipient taken, the second deferred.
  const partly = await acceptMessage({ spool, index }, bufferOctets(message('partly')), {
    ...base,
    sender: '',
    receivedAt: now - 20 * MINUTE,
    recipients: [{ address: 'c@example.net' }, { address: 'd@example.net' }],
  });
  const [p] = index.claimDue({ limit: 10, leaseMs: 10 * MINUTE });
  assert.equal(p!.message.id, partly.id);
  index.record(p!, [
    { seq: 0, result: 'delivered', reply: { code: 250, enhanced: '2.0.0', text: 'Ok: queued as 4Xyz' } },
    { seq: 1, result: 'deferred', reply: { code: 452, enhanced: '4.2.2', text: 'Mailbox full' }, nextAttemptAt: now + 10 * MINUTE },
  ]);

  const held = await acceptMessage({ spool, index }, bufferOctets(message('held')), {
    ...base,
    sender: 'printer@example.com',
    receivedAt: now - 10 * MINUTE,
    recipients: [{ address: 'e@example.net' }],
  });
  index.hold(held.id);
  const queued = await acceptMessage({ spool, index }, bufferOctets(message('queued')), {
    ...base,
    sender: 'erp@example.com',
    receivedAt: now - 5 * MINUTE,
    recipients: [{ address: 'f@example.net' }],
  });
  index.close();

  return {
    dir,
    config,
    spoolDir,
    ids: { queued: queued.id, deferred: deferred.id, held: held.id, partly: partly.id },
    cli: (...args) => dkimRelay(['queue', ...args, '--config', config], dir),
    read(look) {
      const reader = QueueIndex.open(join(spoolDir, 'queue.db'));
      try {
        return look(reader);
      } finally {
        reader.close();
      }
    },
  };
}

const fixture = setUp();

test('queue list: one line per message with its recipients, states, next attempt and shortened last reply, and a summary', async () => {
  const q = await fixture;
  const run = await q.cli('list');
  assert.equal(run.code, 0, shown(run));
  assert.equal(run.stderr, '');
  const lines = run.stdout.trimEnd().split('\n');
  assert.match(lines[0]!, /^ID\s+AGE\s+SIZE\s+SENDER\s+RECIPIENTS\s+ATTEMPTS\s+NEXT\s+LAST REPLY$/);
  assert.equal(lines.length, 6, shown(run));
  const line = (id: string) => lines.find((l) => l.startsWith(id)) ?? assert.fail(`no line for ${id}:\n${run.stdout}`);

  // Oldest first: ids sort by time of arrival.
  assert.deepEqual(
    lines.slice(1, 5).map((l) => l.split(' ')[0]),
    [q.ids.deferred, q.ids.partly, q.ids.held, q.ids.queued],
  );
  assert.match(
    line(q.ids.deferred),
    /\s2h\s.*a@example\.com\s+b@example\.net deferred\s+1\s+in (29|30)m\s+451 4\.4\.1 Upstream unavailable: connect ECONNREFUSED/,
  );
  assert.ok(line(q.ids.deferred).endsWith('…'), 'a long reply is shortened');
  assert.ok(!line(q.ids.deferred).includes('after 3 tries'));
  assert.match(line(q.ids.partly), /\s<>\s+c@example\.net delivered, d@example\.net deferred\s+1\s+in (9|10)m\s+452 4\.2\.2 Mailbox full$/);
  assert.match(line(q.ids.held), /printer@example\.com\s+e@example\.net queued\s+0\s+held\s+-$/);
  assert.match(line(q.ids.queued), /\s5m\s.*erp@example\.com\s+f@example\.net queued\s+0\s+now\s+-$/);
  assert.equal(lines[5], '4 message(s), 4 recipient(s) pending, oldest 2h');
});

test('queue list --json: every message with its recipients, and the summary', async () => {
  const q = await fixture;
  const out = json(await q.cli('list', '--json'));
  assert.deepEqual(
    out.messages.map((m: any) => m.id),
    [q.ids.deferred, q.ids.partly, q.ids.held, q.ids.queued],
  );
  const [deferred, partly, held] = out.messages;
  assert.equal(deferred.sender, 'a@example.com');
  assert.equal(deferred.size, message('deferred').length);
  assert.ok(deferred.ageSeconds >= 7200 && deferred.ageSeconds < 7300, String(deferred.ageSeconds));
  assert.deepEqual(deferred.recipients[0].lastReply, { code: 451, enhanced: '4.4.1', text: LONG_REPLY });
  assert.equal(deferred.recipients[0].attempts, 1);
  assert.ok(Date.parse(deferred.nextAttemptAt) > Date.now());
  assert.deepEqual(
    partly.recipients.map((r: any) => [r.address, r.state, r.nextAttemptAt === null]),
    [
      ['c@example.net', 'delivered', true],
      ['d@example.net', 'deferred', false],
    ],
  );
  assert.equal(held.hold, 'held by administrator');
  assert.equal(out.summary.messages, 4);
  assert.equal(out.summary.pending, 4);
  assert.equal(out.summary.oldestReceivedAt, deferred.receivedAt);
});

test('queue list on an empty queue says so and exits 0, whether or not queue.db exists yet', async () => {
  const dir = tempDir('dkim-relay-queue-cli-');
  const config = join(dir, 'c.yaml');
  writeFileSync(config, `queue:\n  dir: ${join(dir, 'spool')}\n`);
  const none = await dkimRelay(['queue', 'list', '--config', config], dir);
  assert.equal(none.code, 0, shown(none));
  assert.match(none.stdout, /^queue is empty \(.*queue\.db does not exist yet\)\n$/);
  assert.ok(!existsSync(join(dir, 'spool')), 'listing created a spool');

  QueueIndex.open(join(new Spool(join(dir, 'spool')).dir, 'queue.db')).close();
  const empty = await dkimRelay(['queue', 'list', '--config', config], dir);
  assert.equal(empty.code, 0, shown(empty));
  assert.equal(empty.stdout, 'queue is empty\n');
  const out = json(await dkimRelay(['queue', 'list', '--json', '--config', config], dir));
  assert.deepEqual(out, { messages: [], summary: { messages: 0, pending: 0, oldestReceivedAt: null } });
});

test("queue show: envelope, DSN parameters, signatures and each recipient's whole last reply; --json; --message prints the file", async () => {
  const q = await fixture;
  const run = await q.cli('show', q.ids.deferred);
  assert.equal(run.code, 0, shown(run));
  assert.match(run.stdout, new RegExp(`^id:\\s+${q.ids.deferred}$`, 'm'));
  assert.match(run.stdout, /^sender:\s+<a@example\.com>$/m);
  assert.match(run.stdout, /^client:\s+192\.0\.2\.10$/m);
  assert.match(run.stdout, /^held:\s+no$/m);
  assert.match(run.stdout, /^DSN:\s+RET=FULL ENVID=env-42$/m);
  assert.match(run.stdout, /^signatures:\s+d=example\.com s=s1$/m);
  assert.match(run.stdout, /^ {2}<b@example\.net> {2}deferred, 1 attempt\(s\), next in (29|30)m$/m);
  assert.match(run.stdout, /^ {4}NOTIFY=FAILURE,DELAY ORCPT=rfc822;b@example\.net$/m);
  assert.ok(run.stdout.includes(`last reply: 451 4.4.1 ${LONG_REPLY}\n`), shown(run));

  const held = await q.cli('show', q.ids.held);
  assert.match(held.stdout, /^held:\s+yes: held by administrator$/m);
  assert.match(held.stdout, /^DSN:\s+none given$/m);

  const out = json(await q.cli('show', q.ids.partly, '--json'));
  assert.equal(out.sender, '');
  assert.deepEqual(out.signatures, [{ domain: 'example.com', selector: 's1' }]);
  assert.equal(out.file, join(q.spoolDir, 'msg', `${q.ids.partly}.eml`));
  assert.deepEqual(out.recipients[0].lastReply, { code: 250, enhanced: '2.0.0', text: 'Ok: queued as 4Xyz' });

  const raw = await q.cli('show', q.ids.queued, '--message');
  assert.equal(raw.code, 0, shown(raw));
  assert.equal(raw.stdout, message('queued').toString());
  const filed = await q.cli('show', q.ids.deferred, '--message');
  assert.equal(filed.code, 0, shown(filed));
  assert.equal(filed.stdout, message('deferred').toString());
  // A small message has no file: it is kept in queue.db.
  assert.equal(json(await q.cli('show', q.ids.queued, '--json')).file, null);
  assert.match((await q.cli('show', q.ids.queued)).stdout, /^file:\s+none: kept in .*queue\.db$/m);

  oneLine(await q.cli('show', q.ids.queued, '--message', '--json'), /--message prints the message itself, not JSON/);
});

test('an unknown id is one line and exit 1, for every command that takes one', async () => {
  const q = await fixture;
  const unknown = '20200101T000000000-0000-000000000000';
  for (const args of [
    ['show', unknown],
    ['hold', unknown],
    ['release', unknown],
    ['retry', unknown],
    ['delete', unknown, '--yes'],
    ['hold', q.ids.queued, unknown],
  ]) {
    const run = await q.cli(...args);
    assert.equal(run.code, 1, `${args.join(' ')}: ${shown(run)}`);
    oneLine(run, new RegExp(`^dkim-relay: no message ${unknown} in the queue — see dkim-relay queue list\\n$`));
  }
  // All or nothing: the known id named beside the unknown one was not held.
  assert.equal(
    q.read((i) => i.show(q.ids.queued)!.hold),
    null,
  );
});

test('hold keeps a message from being claimed; release lets it go again', async () => {
  const q = await setUp();
  const hold = await q.cli('hold', q.ids.queued);
  assert.equal(hold.code, 0, shown(hold));
  assert.match(hold.stdout, new RegExp(`^${q.ids.queued}: held; nothing more is attempted until dkim-relay queue release ${q.ids.queued}$`, 'm'));
  assert.equal(
    q.read((i) => i.show(q.ids.queued)!.hold),
    'held by administrator',
  );
  // The queue manager's own query passes it by.
  assert.deepEqual(
    q.read((i) => i.claimDue({ limit: 10, leaseMs: MINUTE }).map((c) => c.message.id)),
    [],
  );
  assert.match((await q.cli('hold', q.ids.queued)).stdout, /was already held/);

  const release = json(await q.cli('release', q.ids.queued, '--json'));
  assert.deepEqual(
    release.messages.map((m: any) => [m.id, m.changed, m.held, m.next]),
    [[q.ids.queued, true, false, 'now']],
  );
  assert.equal(
    q.read((i) => i.show(q.ids.queued)!.hold),
    null,
  );
  assert.match((await q.cli('release', q.ids.queued)).stdout, /was not held; nothing to do/);
});

test('hold --all and release --all act on every message; release leaves a message whose file is gone held', async () => {
  const q = await setUp();
  const held = json(await q.cli('hold', '--all', '--json'));
  assert.equal(held.messages.length, 4);
  assert.ok(q.read((i) => i.list().every((m) => m.hold !== null)));

  rmSync(join(q.spoolDir, 'msg', `${q.ids.partly}.eml`));
  const show = await q.cli('show', q.ids.partly, '--message');
  assert.equal(show.code, 1, shown(show));
  oneLine(show, new RegExp(`${q.ids.partly}: its file .* is missing — restore it, or delete the message`));
  const one = await q.cli('release', q.ids.partly);
  assert.equal(one.code, 1, shown(one));
  oneLine(
    one,
    new RegExp(`${q.ids.partly} not released: its file .* is missing — restore the file, or delete the message: dkim-relay queue delete ${q.ids.partly} --yes`),
  );

  const all = await q.cli('release', '--all');
  assert.equal(all.code, 0, shown(all));
  assert.match(all.stdout, new RegExp(`^${q.ids.partly}: not released: its file .* is missing`, 'm'));
  assert.deepEqual(
    q.read((i) => i.list({ held: true }).map((m) => m.id)),
    [q.ids.partly],
  );
});

test('retry makes a deferred message due now and says it will be tried now; a held one is named as held', async () => {
  const q = await setUp();
  const before = Date.now();
  const run = await q.cli('retry', q.ids.deferred);
  assert.equal(run.code, 0, shown(run));
  assert.equal(run.stdout, `${q.ids.deferred}: will be tried now (1 recipient(s))\n`);
  const next = q.read((i) => i.show(q.ids.deferred)!.recipients[0]!.nextAttemptAt);
  assert.ok(next >= before && next <= Date.now(), `next attempt ${next} is not now`);
  assert.deepEqual(
    q.read((i) =>
      i
        .claimDue({ limit: 10, leaseMs: MINUTE })
        .map((c) => c.message.id)
        .sort(),
    ),
    [q.ids.deferred, q.ids.queued],
  );

  const held = await q.cli('retry', q.ids.held);
  assert.match(held.stdout, new RegExp(`but the message is held — release it to deliver: dkim-relay queue release ${q.ids.held}`));
});

test('flush and retry --all make every waiting recipient due; held messages stay held', async () => {
  const q = await setUp();
  const run = await q.cli('flush');
  assert.equal(run.code, 0, shown(run));
  // deferred (1), partly (1 of 2 waiting), queued (1); held (1) stays
  assert.equal(run.stdout, '3 message(s) will be tried now (3 recipient(s)); 1 held message(s) stay held (dkim-relay queue release --all)\n');
  const due = q.read((i) =>
    i
      .claimDue({ limit: 10, leaseMs: MINUTE })
      .map((c) => c.message.id)
      .sort(),
  );
  assert.deepEqual(due, [q.ids.deferred, q.ids.partly, q.ids.queued]);

  const again = json(await q.cli('retry', '--all', '--json'));
  assert.deepEqual(again, { action: 'flush', due: 1, messages: 0, recipients: 0, held: 1 }); // the claimed ones are being delivered: only the held one's recipient waits
});

test('delete without --yes says what it would delete and exits 2; with --yes rows then file are gone', async () => {
  const q = await setUp();
  const file = join(q.spoolDir, 'msg', `${q.ids.deferred}.eml`);
  const refused = await q.cli('delete', q.ids.deferred);
  assert.equal(refused.code, 2, shown(refused));
  assert.equal(refused.stdout, '');
  oneLine(
    refused,
    new RegExp(
      `would delete message ${q.ids.deferred} from <a@example\\.com> to 1 recipient\\(s\\), 1 undelivered, without delivery or bounce — add --yes to delete: dkim-relay queue delete ${q.ids.deferred} --yes`,
    ),
  );
  assert.ok(q.read((i) => i.show(q.ids.deferred)) !== undefined);
  assert.ok(existsSync(file));

  const run = await q.cli('delete', q.ids.deferred, '--yes');
  assert.equal(run.code, 0, shown(run));
  assert.equal(run.stdout, `${q.ids.deferred}: deleted (1 recipient(s) undelivered, no bounce sent)\n`);
  assert.equal(
    q.read((i) => i.show(q.ids.deferred)),
    undefined,
  );
  assert.ok(!existsSync(file));
  assert.equal(
    q.read((i) => i.depth().messages),
    3,
  );
});

test('delete --held --yes removes every held message and nothing else', async () => {
  const q = await setUp();
  await q.cli('hold', q.ids.partly);
  const refused = await q.cli('delete', '--held');
  assert.equal(refused.code, 2, shown(refused));
  oneLine(
    refused,
    /would delete 2 held messages \(2 recipient\(s\) undelivered\), without delivery or bounce — add --yes to delete: dkim-relay queue delete --held --yes/,
  );

  const out = json(await q.cli('delete', '--held', '--yes', '--json'));
  assert.deepEqual(
    out.deleted.map((d: any) => d.id),
    [q.ids.partly, q.ids.held],
  );
  assert.deepEqual(
    q.read((i) => i.list().map((m) => m.id)),
    [q.ids.deferred, q.ids.queued],
  );
  assert.deepEqual(readdirSync(join(q.spoolDir, 'msg')).sort(), [`${q.ids.deferred}.eml`]);
  assert.equal((await q.cli('delete', '--held', '--yes')).stdout, 'no held messages: nothing to delete\n');
});

/** Resolves once process `pid` has `file` open (bounded: 200 looks, 50 ms apart). */
async function untilOpened(pid: number, file: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      if (readdirSync(`/proc/${pid}/fd`).some((fd) => readlinkSync(`/proc/${pid}/fd/${fd}`) === file)) return;
    } catch {
      // the process is starting or gone; look again
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`process ${pid} never opened ${file}`);
}

test('a change while another connection holds the write lock waits for it, then succeeds', async () => {
  const q = await setUp();
  const dbFile = join(q.spoolDir, 'queue.db');
  const holder = new Database(dbFile);
  // As the relay would, mid-transaction: the message is held but not yet committed.
  holder.exec('BEGIN IMMEDIATE');
  holder.prepare(`UPDATE messages SET hold = 'by the other writer' WHERE id = ?`).run(q.ids.queued);
  const running = q.cli('release', q.ids.queued);
  const child = await waitForChild(q.dir);
  await untilOpened(child, dbFile);
  await untilWaitingForLock(child);
  holder.exec('COMMIT');
  holder.close();
  const run = await running;
  assert.equal(run.code, 0, shown(run));
  // It saw the other writer's hold: it waited for that commit rather than reading around it.
  assert.match(run.stdout, new RegExp(`^${q.ids.queued}: released; will be tried now`));
  assert.equal(
    q.read((i) => i.show(q.ids.queued)!.hold),
    null,
  );
});

test('a lock held past the busy timeout is one line, exit 2, and nothing changed', async () => {
  const q = await setUp();
  const holder = new Database(join(q.spoolDir, 'queue.db'));
  holder.exec('BEGIN IMMEDIATE');
  try {
    const run = await q.cli('hold', q.ids.queued);
    assert.equal(run.code, 2, shown(run));
    oneLine(
      run,
      /^dkim-relay: queue database .*queue\.db is locked by another process — wait a moment and retry; if it stays locked, look for a stuck dkim-relay process\n$/,
    );
  } finally {
    holder.exec('ROLLBACK');
    holder.close();
  }
  assert.equal(
    q.read((i) => i.show(q.ids.queued)!.hold),
    null,
  );
});

test("run by another user than the spool's owner (root, say), it refuses rather than leave root-owned files", async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to give the spool to another user');
  const q = await setUp();
  chownSync(q.spoolDir, 65534, 65534);
  const run = await q.cli('list');
  assert.equal(run.code, 2, shown(run));
  oneLine(run, /belongs to uid 65534, and this is uid 0 — run dkim-relay queue as the user the relay runs as/);
});

test('a spool this user may not look into is not called empty: it names the owner', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to give the spool to another user');
  const q = await setUp();
  chownSync(q.spoolDir, 65534, 65534);
  chmodSync(q.spoolDir, 0o700);
  // root without the capabilities that pass over file modes: as any other user, it cannot look inside.
  const node = join(tempDir(), 'node-without-dac-override');
  writeFileSync(node, `#!/bin/sh\nexec setpriv --bounding-set=-dac_override,-dac_read_search -- ${NODE} "$@"\n`, { mode: 0o755 });
  for (const args of [['list'], ['flush'], ['show', q.ids.queued]]) {
    const run = await dkimRelay(['queue', ...args, '--config', q.config], q.dir, { node });
    assert.equal(run.code, 2, shown(run));
    oneLine(run, /belongs to uid 65534, and this is uid 0 — run dkim-relay queue as the user the relay runs as/);
    assert.doesNotMatch(run.stdout, /empty|nothing is waiting/);
  }
});

/**
 * Resolves once process `pid`'s main thread sleeps in SQLite's busy handler:
 * nanosleep or clock_nanosleep (x86-64 system calls 35 and 230), which an
 * idle Node.js thread never is in (it waits in epoll_wait). Bounded: 400 looks, 25 ms apart.
 */
async function untilWaitingForLock(pid: number): Promise<void> {
  const sleeping = () => {
    try {
      return ['35', '230'].includes(readFileSync(`/proc/${pid}/syscall`, 'utf8').split(' ')[0]!);
    } catch {
      return false; // gone; the assertions after say why
    }
  };
  await until(`process ${pid} waiting for the write lock`, sleeping, { timeoutMs: 10_000 });
}

/** The pid of the dkim-relay process started in `cwd` (bounded: 200 looks, 25 ms apart). */
async function waitForChild(cwd: string): Promise<number> {
  for (let i = 0; i < 200; i++) {
    for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
      try {
        if (readlinkSync(`/proc/${pid}/cwd`) === cwd && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('dkim-relay')) return Number(pid);
      } catch {
        // gone, or not ours to look at
      }
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`no dkim-relay process in ${cwd}`);
}
