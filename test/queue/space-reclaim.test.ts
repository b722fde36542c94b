// queue.db gives the space of a delivered backlog back to the file system,
// a bounded step at a time, and leaves a large busy queue's free pages for
// reuse; a queue.db made without incremental auto-vacuum is rewritten once at
// start-up; a step that meets a busy or full database is reported and tried
// again, never thrown. Real SQLite files throughout.
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { silentLogger, type Logger } from '../../src/common/logger.ts';
import { QueueIndex, type DatabaseSpace } from '../../src/queue/queue-index.ts';
import { KEEP_FREE_OCTETS, makeReclaimable, pagesToReclaim, REWRITE_MAX_OCTETS, SpaceReclaimer, STEP_OCTETS } from '../../src/queue/space-reclaim.ts';
import { tempDir } from '../helpers/tmp.ts';
import { envelope } from './support.ts';

const PAGE = 4096;
const MESSAGE = 100 * 1024;

function logged(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line.startsWith('{')) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

/** `count` messages of 100 KiB kept in the index, each its own octets; their ids. */
function fill(index: QueueIndex, count: number, tag: string): string[] {
  const ids = Array.from({ length: count }, (_, i) => `20261207T000000000-${tag}-${String(i).padStart(6, '0')}`);
  index.enqueueMany(ids.map((id) => envelope(id, MESSAGE, ['b@example.net'], { octets: octetsOf(id) })));
  return ids;
}

const octetsOf = (id: string) => Buffer.alloc(MESSAGE, id);
const fileSize = (index: QueueIndex) => statSync(index.file).size;

/** Looks until a run of steps ends (its log line), at most `max` looks. */
function reclaimUntilLogged(reclaimer: SpaceReclaimer, lines: Record<string, unknown>[], max = 100): number {
  for (let looks = 1; looks <= max; looks++) {
    reclaimer.look();
    if (lines.length > 0) return looks;
  }
  assert.fail(`no run of steps ended within ${max} looks`);
}

test('the decision: a step only when a quarter of the file and more than a few MiB are free', () => {
  const space = (pages: number, free: number, reclaimable = true): DatabaseSpace => ({ pageSize: PAGE, pages, free, reclaimable });
  const step = STEP_OCTETS / PAGE;
  const keep = KEEP_FREE_OCTETS / PAGE;
  assert.equal(pagesToReclaim(space(100_000, 99_000)), step, 'a drained backlog: a full step');
  assert.equal(pagesToReclaim(space(100_000, 99_000, false)), 0, 'a file made without incremental auto-vacuum');
  assert.equal(pagesToReclaim(space(keep * 2, keep - 1)), 0, 'less than KEEP_FREE_OCTETS free');
  assert.equal(pagesToReclaim(space(keep * 2, keep)), keep < step ? keep : step, 'the last step gives back what is free');
  assert.equal(pagesToReclaim(space(400_000, 99_999)), 0, 'a large busy queue with less than a quarter free keeps its pages');
  assert.equal(pagesToReclaim(space(400_000, 100_000)), step, 'a quarter free');
});

test('a drained backlog of 100 KiB messages is given back; the messages still queued keep their octets', () => {
  const index = QueueIndex.open(join(tempDir(), 'queue.db'));
  const { logger, lines } = logged();
  try {
    assert.equal(index.space().reclaimable, true, 'a new queue.db is made with incremental auto-vacuum');
    const backlog = fill(index, 400, 'a');
    const kept = fill(index, 5, 'b'); // at the end of the file: moved down by the steps
    index.checkpoint();
    const before = fileSize(index);
    assert.ok(before > 400 * MESSAGE, `queue.db holds the backlog: ${before} octets`);
    for (const id of backlog) assert.equal(index.remove(id), true);
    assert.ok(fileSize(index) >= before, 'delivered messages alone give nothing back');

    const reclaimer = new SpaceReclaimer({ index, logger, failed: (err) => assert.fail(String(err)), succeeded: () => {} });
    const looks = reclaimUntilLogged(reclaimer, lines);
    const after = fileSize(index);
    assert.ok(after < 8 * MESSAGE + KEEP_FREE_OCTETS, `queue.db is ${after} octets after the run (was ${before})`);
    // Each step is bounded: 40 MB back takes about ten steps of 4 MiB, not one.
    assert.ok(looks >= Math.floor((before - after) / STEP_OCTETS), `${looks} looks`);
    const [line] = lines;
    assert.equal(line!.msg, 'queue.db gave the space of a delivered backlog back to the file system');
    assert.equal(line!.steps, looks - 1);
    assert.ok((line!.freedMiB as number) >= 35, JSON.stringify(line));
    for (const id of kept) assert.deepEqual(index.octets(id), octetsOf(id), `${id} after its pages were moved`);

    reclaimer.look();
    assert.equal(lines.length, 1, 'nothing more to give back, nothing more logged');
  } finally {
    index.close();
  }
});

test('a large queue with a few delivered messages keeps its free pages for the next ones', () => {
  const index = QueueIndex.open(join(tempDir(), 'queue.db'));
  try {
    const ids = fill(index, 400, 'c');
    for (const id of ids.slice(0, 60)) index.remove(id);
    const { pages, free } = index.space();
    assert.ok(free * PAGE > KEEP_FREE_OCTETS && free * 3 < pages - free, `${free} of ${pages} pages free`);
    const reclaimer = new SpaceReclaimer({ index, logger: silentLogger(), failed: (err) => assert.fail(String(err)), succeeded: () => {} });
    reclaimer.look();
    assert.equal(index.space().pages, pages);
  } finally {
    index.close();
  }
});

test('a step that meets another writer is reported and tried again at the next look', () => {
  const file = join(tempDir(), 'queue.db');
  const index = QueueIndex.open(file, { busyTimeoutMs: 20 });
  const other = new Database(file);
  try {
    for (const id of fill(index, 100, 'd')) index.remove(id);
    const failures: string[] = [];
    let successes = 0;
    const reclaimer = new SpaceReclaimer({ index, logger: silentLogger(), failed: (err) => failures.push(String(err)), succeeded: () => successes++ });
    const pages = index.space().pages;
    other.exec('BEGIN IMMEDIATE'); // as `dkim-relay queue delete` holds the write lock for a moment
    reclaimer.look();
    assert.equal(failures.length, 1);
    assert.match(failures[0]!, /locked|busy/i);
    assert.equal(index.space().pages, pages, 'nothing changed');
    other.exec('ROLLBACK');
    reclaimer.look();
    assert.equal(successes, 1);
    assert.ok(index.space().pages < pages, 'the next look gave space back');
  } finally {
    other.close();
    index.close();
  }
});

test('a queue.db made without incremental auto-vacuum is rewritten once at start-up, its messages intact', () => {
  const file = join(tempDir(), 'queue.db');
  let index = QueueIndex.open(file);
  const ids = fill(index, 20, 'e');
  index.db.pragma('auto_vacuum = NONE'); // as every queue.db made before this release
  index.db.exec('VACUUM');
  assert.equal(index.space().reclaimable, false);
  index.close();

  index = QueueIndex.open(file);
  const { logger, lines } = logged();
  try {
    assert.equal(index.space().reclaimable, false, 'opening alone changes nothing (the queue command opens it beside the relay)');
    makeReclaimable(index, logger);
    assert.equal(index.space().reclaimable, true);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.msg, 'queue.db rewritten once (VACUUM) so that it can give the space of a delivered backlog back');
    for (const id of ids) assert.deepEqual(index.octets(id), octetsOf(id));
    makeReclaimable(index, logger);
    assert.equal(lines.length, 1, 'once');
  } finally {
    index.close();
  }
});

test('a rewrite that fails leaves the relay running on the file as it was, with a warning', () => {
  const { logger, lines } = logged();
  const index = {
    file: '/var/spool/dkim-relay/queue.db',
    makeReclaimable: () => {
      throw new Error('database or disk is full');
    },
    space: () => ({ pageSize: PAGE, pages: 100, free: 0, reclaimable: false }),
  };
  makeReclaimable(index, logger);
  assert.equal(lines.length, 1);
  assert.equal(lines[0]!.level, 40);
  assert.match(String(lines[0]!.msg), /could not be rewritten .* tried again at the next start/);
  assert.equal(lines[0]!.err, 'database or disk is full');
});

test('a queue.db holding more queued mail than a start-up rewrite copies is left for a later start', () => {
  const { logger, lines } = logged();
  let rewritten = 0;
  const pages = REWRITE_MAX_OCTETS / PAGE + 1;
  const index = {
    file: '/var/spool/dkim-relay/queue.db',
    makeReclaimable: () => (rewritten++, true),
    space: () => ({ pageSize: PAGE, pages: pages + 1000, free: 1000, reclaimable: false }),
  };
  makeReclaimable(index, logger);
  assert.equal(rewritten, 0);
  assert.equal(lines.length, 1);
  assert.match(String(lines[0]!.msg), /too much queued mail to be rewritten .* until a start with a smaller queue rewrites it/);
  // One page less is rewritten.
  makeReclaimable({ ...index, space: () => ({ pageSize: PAGE, pages: pages - 1 + 1000, free: 1000, reclaimable: false }) }, logger);
  assert.equal(rewritten, 1);
});
