// Message files on a real disk: layout, ids, streaming, memory, full and read-only disks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isMessageId, newSpoolId, Spool } from '../../src/queue/spool.ts';
import { SpoolUnavailableError } from '../../src/common/spool-error.ts';
import { collectGarbage } from '../helpers/collect.ts';
import { poolRequests } from '../helpers/pool-requests.ts';
import { tempDir } from '../helpers/tmp.ts';
import { chunks, makeReadOnly, smallDisk } from './support.ts';

const MESSAGE = Buffer.from('From: a@example.com\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nbody\r\n');

function names(dir: string, sub: string): string[] {
  return readdirSync(join(dir, sub));
}

async function readAll(spool: Spool, id: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of spool.read(id)) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

test('a message is written to msg/<id>.eml, mode 0600, in a spool of mode 0700, and read back', async () => {
  const dir = join(tempDir(), 'spool');
  const spool = new Spool(dir);
  const stored = await spool.write(MESSAGE);

  assert.ok(isMessageId(stored.id), stored.id);
  assert.equal(stored.size, MESSAGE.length);
  assert.deepEqual(names(dir, 'msg'), [`${stored.id}.eml`]);
  assert.deepEqual(names(dir, 'tmp'), []);
  assert.equal(statSync(spool.path(stored.id)).mode & 0o777, 0o600);
  for (const sub of ['', 'msg', 'tmp', 'corrupt']) assert.equal(statSync(join(dir, sub)).mode & 0o777, 0o700, sub);
  assert.deepEqual(readFileSync(spool.path(stored.id)), MESSAGE);
  assert.deepEqual(await readAll(spool, stored.id), MESSAGE);
  assert.equal(await spool.size(stored.id), MESSAGE.length);

  await spool.delete(stored.id);
  assert.deepEqual(names(dir, 'msg'), []);
  assert.equal(await spool.size(stored.id), undefined);
});

test('a small message reaches msg/ with three trips through the thread pool: its fsync, the rename, the fsync of msg/', async () => {
  const spool = new Spool(tempDir());
  let id = '';
  const kinds = await poolRequests(async () => (id = (await spool.write(MESSAGE)).id));
  // Creating the file, its one write and its close are made on the event loop (microseconds each on a local disk).
  assert.equal(kinds.length, 3, kinds.join(', '));
  assert.deepEqual(readFileSync(spool.path(id)), MESSAGE);
});

test('a message being written is only in tmp/; it appears in msg/ whole, at commit', async () => {
  const dir = tempDir();
  const spool = new Spool(dir);
  const writer = spool.begin();
  await writer.write(MESSAGE.subarray(0, 10));
  await writer.write(MESSAGE.subarray(10));
  assert.deepEqual(names(dir, 'msg'), []);
  assert.deepEqual(names(dir, 'tmp'), [`${writer.id}.tmp`]);

  const stored = await writer.commit();
  assert.deepEqual(names(dir, 'tmp'), []);
  assert.deepEqual(readFileSync(spool.path(stored.id)), MESSAGE);
});

test('a writer told to expect a small message still writes a larger one whole, in order', async () => {
  const dir = tempDir();
  const spool = new Spool(dir);
  const writer = spool.begin();
  writer.expect(100);
  const message = Buffer.from(Array.from({ length: 200_000 }, (_, i) => 65 + (i % 26)));
  // Pieces smaller than, equal to and larger than the 100-octet buffer, then a large one.
  for (const [from, to] of [
    [0, 60],
    [60, 160],
    [160, 400],
    [400, 130_000],
    [130_000, 200_000],
  ] as const)
    await writer.write(message.subarray(from, to));
  const stored = await writer.commit();
  assert.equal(stored.size, message.length);
  assert.deepEqual(readFileSync(spool.path(stored.id)), message);
});

test('ids sort in time order, also within one millisecond, and never repeat', () => {
  const at = new Date(Date.UTC(2026, 10, 22, 10, 15, 30, 123));
  const first = newSpoolId(at);
  assert.match(first, /^20261122T101530123-0000-[0-9a-v]{12}$/);
  const sameMs = Array.from({ length: 50 }, () => newSpoolId(at));
  assert.deepEqual([...sameMs].sort(), sameMs);
  const later = Array.from({ length: 1000 }, (_, i) => newSpoolId(new Date(at.getTime() + 1 + i * 997)));
  assert.deepEqual([...later].sort(), later);
  assert.ok(later[0]! > sameMs.at(-1)!);
  assert.equal(new Set([first, ...sameMs, ...later]).size, 1051);
  assert.ok(later.every(isMessageId));
  assert.equal(isMessageId('../../etc/passwd'), false);
});

test('chunks of every size give the same bytes, small ones gathered, large ones written through', async () => {
  const spool = new Spool(tempDir());
  const source = Buffer.alloc(300_000);
  for (let i = 0; i < source.length; i++) source[i] = (i * 7) % 256;
  const sizes = [1, 5, 70_000, 3, 65_536, 10, 100_000];
  async function* pieces() {
    let offset = 0;
    for (let i = 0; offset < source.length; i++) {
      const size = sizes[i % sizes.length]!;
      yield source.subarray(offset, offset + size);
      offset += size;
    }
  }
  const stored = await spool.write(pieces());
  assert.equal(stored.size, source.length);
  assert.deepEqual(readFileSync(spool.path(stored.id)), source);
});

test('a source that fails half-way leaves nothing in tmp/ or msg/', async () => {
  const dir = tempDir();
  const spool = new Spool(dir);
  async function* failing() {
    yield Buffer.alloc(200_000, 1);
    throw new Error('client went away');
  }
  await assert.rejects(spool.write(failing()), /client went away/);
  assert.deepEqual(names(dir, 'tmp'), []);
  assert.deepEqual(names(dir, 'msg'), []);
});

test('a 30 MB message written from chunks grows memory by a few MB, not by its size', async (t) => {
  const spool = new Spool(tempDir());
  const CHUNK = 64 * 1024;
  const COUNT = (30 * 1024 * 1024) / CHUNK;

  collectGarbage();
  const before = process.memoryUsage();
  let peakRss = before.rss;
  let peakBuffers = before.arrayBuffers;
  const hash = createHash('sha256');
  async function* measured() {
    for await (const chunk of chunks(COUNT, CHUNK)) {
      hash.update(chunk);
      yield chunk;
      const now = process.memoryUsage();
      peakRss = Math.max(peakRss, now.rss);
      peakBuffers = Math.max(peakBuffers, now.arrayBuffers);
    }
  }
  const stored = await spool.write(measured());
  assert.equal(stored.size, 30 * 1024 * 1024);

  const MB = 1024 * 1024;
  const rssGrowth = (peakRss - before.rss) / MB;
  const bufferGrowth = (peakBuffers - before.arrayBuffers) / MB;
  assert.ok(bufferGrowth < 4, `ArrayBuffer memory grew ${bufferGrowth.toFixed(1)} MB writing 30 MB`);
  assert.ok(rssGrowth < 16, `RSS grew ${rssGrowth.toFixed(1)} MB writing 30 MB`);
  t.diagnostic(`writing 30 MB: RSS +${rssGrowth.toFixed(1)} MB, ArrayBuffers +${bufferGrowth.toFixed(2)} MB`);

  // Reading it back for delivery streams too. Each chunk read is a new
  // buffer, garbage at once: memory is sampled after a collection, so what
  // is measured is what the stream holds on to.
  collectGarbage();
  const beforeRead = process.memoryUsage();
  let peakReadBuffers = beforeRead.arrayBuffers;
  const readHash = createHash('sha256');
  let parts = 0;
  for await (const part of spool.read(stored.id)) {
    readHash.update(part as Buffer);
    if (++parts % 32 === 0) {
      collectGarbage();
      peakReadBuffers = Math.max(peakReadBuffers, process.memoryUsage().arrayBuffers);
    }
  }
  assert.equal(readHash.digest('hex'), hash.digest('hex'));
  const readGrowth = (peakReadBuffers - beforeRead.arrayBuffers) / MB;
  assert.ok(readGrowth < 4, `reading 30 MB back held ${readGrowth.toFixed(1)} MB`);
});

test('a full disk is SpoolUnavailableError(full), and no partial file is left behind', async (t) => {
  const disk = smallDisk(t, '2m');
  if (!disk) return;
  const spool = new Spool(join(disk, 'spool'));

  const err = await spool.write(chunks(48, 64 * 1024)).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(err instanceof SpoolUnavailableError, `got ${String(err)}`);
  assert.equal(err.reason, 'full');
  assert.equal(err.code, 'ENOSPC');
  assert.deepEqual(names(spool.dir, 'tmp'), []);
  assert.deepEqual(names(spool.dir, 'msg'), []);

  // The space the failed write took is free again: a small message fits.
  const stored = await spool.write(MESSAGE);
  assert.deepEqual(readFileSync(spool.path(stored.id)), MESSAGE);
});

test('a read-only spool is SpoolUnavailableError(unwritable)', async (t) => {
  const disk = smallDisk(t, '1m');
  if (!disk) return;
  const spool = new Spool(join(disk, 'spool'));
  makeReadOnly(disk);

  const err = await spool.write(MESSAGE).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(err instanceof SpoolUnavailableError, `got ${String(err)}`);
  assert.equal(err.reason, 'unwritable');
  assert.equal(err.code, 'EROFS');
  assert.deepEqual(names(spool.dir, 'msg'), []);
});
