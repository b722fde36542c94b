// A message file's octets, read as often as asked: a small one at once without the thread pool, a large one chunk by chunk.
import assert from 'node:assert/strict';
import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CHUNK, fileOctets, readOctets } from '../../src/message/octets.ts';
import { poolRequests } from '../helpers/pool-requests.ts';
import { tempDir } from '../helpers/tmp.ts';

function fileOf(size: number): { path: string; data: Buffer } {
  const data = Buffer.from(Array.from({ length: size }, (_, i) => i % 251));
  const path = join(tempDir(), 'message.eml');
  writeFileSync(path, data);
  return { path, data };
}

test('a small file is read whole from its offset, as often as asked, without a trip through the thread pool', async () => {
  const { path, data } = fileOf(4096);
  const octets = fileOctets(path, 100, 3000);
  assert.equal(octets.size, 3000);
  assert.equal((await poolRequests(() => readOctets(octets))).length, 0);
  assert.deepEqual(await readOctets(octets), data.subarray(100, 3100));
  assert.deepEqual(await readOctets(octets), data.subarray(100, 3100));
});

test('a file of two chunks is read at once, without the thread pool, and still comes in chunks of CHUNK octets', async () => {
  const { path, data } = fileOf(2 * CHUNK);
  const octets = fileOctets(path, 1, 2 * CHUNK - 1);
  const sizes: number[] = [];
  const requests = await poolRequests(async () => {
    for await (const chunk of octets.chunks()) sizes.push(chunk.length);
  });
  assert.equal(requests.length, 0);
  assert.deepEqual(sizes, [CHUNK, CHUNK - 1]);
  assert.deepEqual(await readOctets(octets), data.subarray(1));
});

test('a large file comes in chunks of CHUNK octets at most, whole', async () => {
  const { path, data } = fileOf(3 * CHUNK + 17);
  const octets = fileOctets(path, 5, data.length - 5);
  const sizes: number[] = [];
  const parts: Buffer[] = [];
  for await (const chunk of octets.chunks()) {
    sizes.push(chunk.length);
    parts.push(Buffer.from(chunk));
  }
  assert.ok(sizes.every((n) => n <= CHUNK));
  assert.deepEqual(Buffer.concat(parts), data.subarray(5));
});

test('a file cut short under the reader is an error, never a shorter message', async () => {
  for (const size of [4096, 2 * CHUNK]) {
    const { path } = fileOf(size);
    const octets = fileOctets(path, 0, size);
    truncateSync(path, size - 10);
    await assert.rejects(readOctets(octets), /expected \d+ octets from 0, the file ends after/);
  }
});
