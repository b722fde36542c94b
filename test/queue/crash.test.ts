// A relay killed (SIGKILL) at random moments while it accepts messages, then
// restarted: every message whose acceptance resolved (a 250 the client saw)
// is queued whole, and nothing is left half-there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../../src/common/logger.ts';
import { QueueIndex } from '../../src/queue/queue-index.ts';
import { recoverQueue } from '../../src/queue/recovery.ts';
import { Spool } from '../../src/queue/spool.ts';
import { tempDir } from '../helpers/tmp.ts';
import { mulberry32 } from './crash-harness.ts';

const CHILD = fileURLToPath(new URL('./fixtures/enqueue-child.ts', import.meta.url));
const ROUNDS = 20;
const IN_FLIGHT = 4; // as in the child

/** Runs the child until `killAfterMs` after it is ready, kills it, and returns the lines it printed. */
function runAndKill(dir: string, killAfterMs: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const guard = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.stdout.on('data', (d: Buffer) => {
      const first = out === '';
      out += d;
      if (first && out.startsWith('ready\n')) setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    });
    child.stderr.on('data', (d: Buffer) => (err += d));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(guard);
      if (signal !== 'SIGKILL') reject(new Error(`child ended by itself (${code}): ${err}`));
      // Only whole lines: a line cut by the kill was never a resolved acceptance.
      else
        resolve(
          out
            .split('\n')
            .slice(0, -1)
            .filter((l) => l !== 'ready'),
        );
    });
  });
}

test(`killed ${ROUNDS} times at random while accepting, no acknowledged message is lost and none is half-there`, async (t) => {
  const seed = Date.now() >>> 0;
  t.diagnostic(`seed ${seed}`);
  const random = mulberry32(seed);
  const dir = tempDir();
  const acked = new Map<string, { sha: string; size: number }>();
  let moved = 0;
  let tempRemoved = 0;

  for (let round = 0; round < ROUNDS; round++) {
    for (const line of await runAndKill(dir, Math.floor(random() * 300))) {
      const [id, sha, size] = line.split(' ');
      acked.set(id!, { sha: sha!, size: Number(size) });
    }

    const spool = new Spool(dir);
    const index = QueueIndex.open(join(dir, 'queue.db'));
    const report = await recoverQueue(spool, index, silentLogger());
    moved += report.movedToCorrupt;
    tempRemoved += report.tempRemoved;

    assert.deepEqual(report.heldIds, [], `round ${round}: a committed message lost its file`);
    assert.ok(report.movedToCorrupt <= IN_FLIGHT, `round ${round}: ${report.movedToCorrupt} uncommitted files, more than were in flight`);
    assert.deepEqual(readdirSync(join(dir, 'tmp')), [], `round ${round}: tmp/ not emptied`);
    const filed = index
      .allMessages()
      .filter((m) => m.inlineSize === null)
      .map((m) => m.id);
    assert.deepEqual((await spool.list()).ids, filed, `round ${round}: files and the rows of filed messages differ`);
    for (const name of readdirSync(join(dir, 'corrupt'))) {
      assert.ok(!acked.has(name.replace(/\.eml$/, '')), `round ${round}: acknowledged message ${name} was moved aside`);
    }
    for (const [id, { sha, size }] of acked) {
      const shown = index.show(id);
      assert.ok(shown, `round ${round}: acknowledged ${id} is not in the index`);
      assert.equal(shown.size, size);
      assert.equal(shown.hold, null);
      assert.deepEqual(
        shown.recipients.map((r) => r.state),
        ['queued', 'queued'],
      );
      const octets = shown.storedIn === 'index' ? index.octets(id)! : readFileSync(spool.path(id));
      assert.equal(octets.length, size);
      assert.equal(createHash('sha256').update(octets).digest('hex'), sha, `round ${round}: ${id} differs`);
    }
    index.close();
  }
  assert.ok(acked.size > 0, 'no message was ever acknowledged: the kills came too early to test anything');
  t.diagnostic(`${acked.size} acknowledged, ${moved} uncommitted files moved aside, ${tempRemoved} interrupted writes removed`);
});
