// Receiving DATA: header block kept apart, body scanned, large messages
// written to disk as they arrive, a full disk reported as such.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { readOctets } from '../../src/message/octets.ts';
import { intakeDir, receiveMessage, removeStaleIntakeFiles, SPILL_AT } from '../../src/message/intake.ts';
import { SpoolUnavailableError } from '../../src/common/spool-error.ts';
import { tempDir } from '../helpers/tmp.ts';
import { smallDisk } from '../queue/support.ts';

const LIMITS = { maxSize: 64 * 1024 * 1024, maxHeader: 1024 * 1024 };

async function* cut(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < data.length; at += size) yield data.subarray(at, at + size);
}

const HEADER = 'From: a@example.com\r\nTo: b@example.net\r\nSubject: intake\r\n\r\n';

test('a small message stays in memory; header block and body come apart where the empty line is', async () => {
  const dir = tempDir();
  for (const size of [1, 7, 64, 4096]) {
    const got = await receiveMessage(cut(Buffer.from(`${HEADER}line one\r\nline two\r\n`), size), { ...LIMITS, dir: dir });
    assert.ok(got.ok);
    assert.equal(got.message.file, undefined);
    assert.equal(got.message.header.toString(), HEADER);
    assert.equal((await readOctets(got.message.body)).toString(), 'line one\r\nline two\r\n');
    assert.deepEqual(got.message.bodyFacts, { longest: 0, eightBit: false, nul: false });
  }
  assert.deepEqual(readdirSync(dir), []);
});

test('a message kept in memory is held as the chunks it came in, never copied into one Buffer', async () => {
  const dir = tempDir();
  const data = Buffer.from(`${HEADER}${'a line of the body\r\n'.repeat(500)}`);
  const chunks: Buffer[] = [];
  for (let at = 0; at < data.length; at += 1000) chunks.push(Buffer.from(data.subarray(at, at + 1000)));
  const got = await receiveMessage(
    (async function* () {
      yield* chunks;
    })(),
    { ...LIMITS, dir },
  );
  assert.ok(got.ok);
  const held = got.message.body.held!;
  assert.equal(held.length, chunks.length, 'one part a chunk');
  held.forEach((part, i) => assert.equal(part.buffer, chunks[i]!.buffer, `part ${i} is a view of its chunk`));
  assert.deepEqual(Buffer.concat([got.message.header, ...held]), data);
});

test('a body line over 998 octets is measured whole, however the body is cut into chunks', async () => {
  const dir = tempDir();
  const long = 'x'.repeat(1200);
  for (const size of [1, 7, 64, 998, 4096]) {
    const got = await receiveMessage(cut(Buffer.from(`${HEADER}short\r\n${long}\r\nshort\r\n`), size), { ...LIMITS, dir: dir });
    assert.ok(got.ok);
    assert.deepEqual(got.message.bodyFacts, { longest: long.length, eightBit: false, nul: false }, `chunks of ${size}`);
  }
});

test('a large message goes to a file as it arrives, and the file goes with discard()', async () => {
  const dir = tempDir();
  const body = Buffer.alloc(3 * SPILL_AT, 'abcdefghij\r\n');
  const got = await receiveMessage(cut(Buffer.concat([Buffer.from(HEADER), body, Buffer.from('ü\u0000\r\n')]), 10_000), { ...LIMITS, dir: intakeDir(dir) });
  assert.ok(got.ok);
  const file = got.message.file!;
  assert.ok(existsSync(file), 'written to disk');
  assert.equal(got.message.header.toString(), HEADER);
  assert.deepEqual(await readOctets(got.message.body), Buffer.concat([body, Buffer.from('ü\u0000\r\n')]));
  assert.deepEqual(got.message.bodyFacts, { longest: 0, eightBit: true, nul: true });
  await got.message.discard();
  assert.equal(existsSync(file), false);
});

test('bare LF and CR become CRLF, also across chunk borders, and the header is found after the fix', async () => {
  const dir = tempDir();
  const raw = Buffer.from('From: a@example.com\nSubject: lf\n\nbody\rmore\n');
  for (const size of [1, 2, 3, 100]) {
    const got = await receiveMessage(cut(raw, size), { ...LIMITS, dir: dir });
    assert.ok(got.ok);
    assert.equal(got.message.crlfFixed, true);
    assert.equal(got.message.header.toString(), 'From: a@example.com\r\nSubject: lf\r\n\r\n');
    assert.equal((await readOctets(got.message.body)).toString(), 'body\r\nmore\r\n');
  }
});

test('a header block longer than the limit is cut and flagged; a message without an empty line is all header', async () => {
  const dir = tempDir();
  const long = Buffer.from(`${'X-Filler: 0123456789012345678901234567890123456789\r\n'.repeat(100)}\r\nbody\r\n`);
  const cutHeader = await receiveMessage(cut(long, 100), { ...LIMITS, maxHeader: 1024, dir: dir });
  assert.ok(cutHeader.ok);
  assert.equal(cutHeader.message.headerCut, true);
  assert.ok(cutHeader.message.header.length <= 1024 + 5);

  const noBody = await receiveMessage(cut(Buffer.from('From: a@example.com\r\nSubject: x\r\n'), 5), { ...LIMITS, dir: dir });
  assert.ok(noBody.ok);
  assert.equal(noBody.message.header.toString(), 'From: a@example.com\r\nSubject: x\r\n');
  assert.equal(noBody.message.body.size, 0);
});

test('however the message is cut into chunks, the header block, its end and the cut flag are the same', async () => {
  const dir = tempDir();
  const limit = { ...LIMITS, maxHeader: 1024 };
  const field = 'X-Filler: 0123456789012345678901234567890123456789\r\n';
  const messages = [
    '\r\nno header at all\r\n',
    'From: a@example.com\r\n\r\n\r\nan empty first body line\r\n',
    // The largest header block found whole, and one octet more: cut.
    `${field.repeat(19)}${'x'.repeat(1029 - 19 * field.length - 4)}\r\n\r\nbody\r\n`,
    `${field.repeat(19)}${'x'.repeat(1030 - 19 * field.length - 4)}\r\n\r\nbody\r\n`,
    `${field.repeat(30)}\r\nbody\r\n`,
  ];
  const cutFlags = [false, false, false, true, true];
  for (const [at, text] of messages.entries()) {
    const seen = new Set<string>();
    for (const size of [1, 2, 3, 4, 5, 7, 64, 1000, 4096]) {
      const got = await receiveMessage(cut(Buffer.from(text), size), { ...limit, dir });
      assert.ok(got.ok);
      assert.equal(got.message.headerCut, cutFlags[at], `message ${at} in chunks of ${size}`);
      const body = got.message.headerCut ? '' : (await readOctets(got.message.body)).toString();
      seen.add(JSON.stringify([got.message.header.toString(), got.message.headerCut, body]));
    }
    assert.equal(seen.size, 1, `${JSON.stringify(text.slice(0, 20))}: ${[...seen].join(' | ')}`);
  }
  const none = await receiveMessage(cut(Buffer.from(messages[0]!), 1), { ...limit, dir });
  assert.ok(none.ok);
  assert.equal(none.message.header.toString(), '\r\n');
  assert.equal((await readOctets(none.message.body)).toString(), 'no header at all\r\n');
});

test('a header trickled in small pieces is copied about once, not once for every piece that follows it', async (t) => {
  const dir = tempDir();
  const header = `From: a@example.com\r\n${'X-Filler: 0123456789012345678901234567890123456789\r\n'.repeat(5000)}\r\n`;
  const concat = t.mock.method(Buffer, 'concat');
  const got = await receiveMessage(cut(Buffer.from(`${header}body\r\n`), 1024), { ...LIMITS, dir });
  const copied = concat.mock.calls.reduce((sum, call) => sum + (call.result as Buffer).length, 0);
  concat.mock.restore();
  assert.ok(got.ok);
  assert.equal(got.message.header.toString(), header);
  // Joining the header so far with each 1 KiB piece copied 33 MB for this 260 KB header.
  assert.ok(copied < 3 * header.length, `${copied} octets joined for a header of ${header.length}`);
  await got.message.discard();
});

/** FileHandle's prototype, whose write methods the tests below watch. */
async function fileHandlePrototype(dir: string): Promise<FileHandle> {
  const handle = await open(join(dir, 'probe'), 'w');
  await handle.close();
  return Object.getPrototypeOf(handle) as FileHandle;
}

test('a message trickled in small pieces is written out 32 KiB at a time, not one write a piece', async (t) => {
  const dir = tempDir();
  const proto = await fileHandlePrototype(dir);
  const writev = t.mock.method(proto, 'writev');
  const write = t.mock.method(proto, 'write');
  const raw = Buffer.concat([Buffer.from(HEADER), Buffer.alloc(15 * 70_000, 'trickled line\r\n')]);
  const got = await receiveMessage(cut(raw, 512), { ...LIMITS, dir: join(dir, 'tmp') });
  assert.ok(got.ok);
  const written = readFileSync(got.message.file!);
  // Not deepEqual: its diff of two 1 MB Buffers takes minutes to print.
  assert.ok(written.equals(raw), `the file holds ${written.length} octets, not the message`);
  // 2,051 pieces: one write for each before, now one for each 32 KiB and the rest at the end.
  assert.equal(write.mock.callCount(), 0);
  assert.ok(writev.mock.callCount() <= Math.ceil(raw.length / (32 * 1024)) + 1, `${writev.mock.callCount()} writes`);
  await got.message.discard();
});

test('a write the kernel takes only in part is carried on where it stopped', async (t) => {
  const dir = tempDir();
  const proto = await fileHandlePrototype(dir);
  const original = proto.writev;
  // Each call writes half of its first buffer alone, at most 1,000 octets.
  t.mock.method(proto, 'writev', function (this: FileHandle, buffers: Buffer[]) {
    const first = buffers[0]!;
    return original.call(this, [first.subarray(0, Math.min(1000, Math.ceil(first.length / 2)))]);
  });
  const raw = Buffer.concat([Buffer.from(HEADER), Buffer.alloc(12 * 15_100, '0123456789\r\n')]);
  const got = await receiveMessage(cut(raw, 7_000), { ...LIMITS, dir: join(dir, 'tmp') });
  assert.ok(got.ok);
  const written = readFileSync(got.message.file!);
  assert.ok(written.equals(raw), `the file holds ${written.length} of the message's ${raw.length} octets, or others`);
  await got.message.discard();
});

test('a client that pauses mid-DATA finds what it sent on disk, though less than a write is waiting', async () => {
  const dir = tempDir();
  const tmp = join(dir, 'tmp');
  // Past SPILL_AT, and then a piece too small to be written by its size alone.
  const first = Buffer.concat([Buffer.from(HEADER), Buffer.alloc(SPILL_AT + 5_000, 'sent before the pause\r\n')]);
  const second = Buffer.from('x'.repeat(998) + '\r\n');
  let resume!: () => void;
  const paused = new Promise<void>((r) => (resume = r));
  const receiving = receiveMessage(
    (async function* () {
      yield first;
      yield second;
      await paused;
      yield Buffer.from('after the pause\r\n');
    })(),
    { ...LIMITS, dir: tmp },
  );
  const size = () => (existsSync(tmp) ? readdirSync(tmp) : []).reduce((sum, name) => sum + statSync(join(tmp, name)).size, 0);
  try {
    for (const end = Date.now() + 10_000; size() < first.length + second.length;) {
      assert.ok(Date.now() < end, `after 10 s the intake file holds ${size()} of the ${first.length + second.length} octets sent`);
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(size(), first.length + second.length);
  } finally {
    resume();
  }
  const got = await receiving;
  assert.ok(got.ok);
  assert.ok(readFileSync(got.message.file!).equals(Buffer.concat([first, second, Buffer.from('after the pause\r\n')])));
  await got.message.discard();
});

test('past maxSize the rest is read and dropped, nothing is left on disk', async () => {
  const dir = tempDir();
  const raw = Buffer.concat([Buffer.from(HEADER), Buffer.alloc(1024 * 1024, 'x\r\n')]);
  const got = await receiveMessage(cut(raw, 64 * 1024), { ...LIMITS, maxSize: 512 * 1024, dir: dir });
  assert.equal(got.ok, false);
  assert.equal(got.size, raw.length, 'read to the end');
  assert.deepEqual(readdirSync(dir), []);
});

test('a full disk is SpoolUnavailableError once DATA has been read to its end, and no file is left', async (t) => {
  const disk = smallDisk(t, '1m');
  if (!disk) return;
  let read = 0;
  async function* source(): AsyncGenerator<Buffer> {
    for (let i = 0; i < 64; i++) {
      read++;
      yield i === 0 ? Buffer.from(HEADER) : Buffer.alloc(64 * 1024, 'y\r\n');
    }
  }
  await assert.rejects(receiveMessage(source(), { ...LIMITS, dir: disk }), (err) => err instanceof SpoolUnavailableError && err.reason === 'full');
  assert.equal(read, 64, 'the client was read to its final dot');
  assert.deepEqual(readdirSync(disk), []);
});

test('files a stopped relay was receiving are removed at start, and only those', async () => {
  const dir = tempDir();
  const got = await receiveMessage(cut(Buffer.concat([Buffer.from(HEADER), Buffer.alloc(2 * SPILL_AT, 'z\r\n')]), 8192), { ...LIMITS, dir: dir });
  assert.ok(got.ok && got.message.file);
  writeFileSync(`${dir}/20261126T000000000-0000-abcdefabcdef.tmp`, 'a spool write');
  assert.equal(removeStaleIntakeFiles(dir), 1);
  assert.deepEqual(readdirSync(dir), ['20261126T000000000-0000-abcdefabcdef.tmp']);
  assert.equal(removeStaleIntakeFiles(`${dir}/missing`), 0);
});

test('a client that drops the connection mid-DATA leaves no intake file and no open descriptor behind', async () => {
  const { startTestRelay } = await import('../helpers/relay-harness.ts');
  const { rawSession } = await import('../helpers/raw-smtp.ts');
  const { readlinkSync } = await import('node:fs');
  const relay = await startTestRelay({ delivery: { upstream: { type: 'file', dir: join(tempDir(), 'outbox') } } });
  const intake = join(relay.dir, 'spool', 'tmp');
  const openIntakeFiles = () =>
    readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`).startsWith(intake);
      } catch {
        return false;
      }
    });
  try {
    for (let i = 0; i < 3; i++) {
      const session = await rawSession(relay.port);
      await session.reply(1);
      session.write('EHLO client.test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n');
      await session.reply(4);
      session.write(HEADER + 'x\r\n'.repeat(SPILL_AT));
      // Until the relay has written past SPILL_AT, the intake file exists.
      for (let n = 0; n < 100 && !(existsSync(intake) && readdirSync(intake).some((f) => f.startsWith('intake-'))); n++)
        await new Promise((r) => setTimeout(r, 20));
      assert.ok(
        readdirSync(intake).some((f) => f.startsWith('intake-')),
        'the message went to disk',
      );
      session.socket.destroy();
      await session.closed;
    }
    for (let n = 0; n < 100 && (readdirSync(intake).some((f) => f.startsWith('intake-')) || openIntakeFiles().length > 0); n++)
      await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(
      readdirSync(intake).filter((f) => f.startsWith('intake-')),
      [],
      'intake files removed',
    );
    assert.deepEqual(openIntakeFiles(), [], 'no descriptor left open on them');
  } finally {
    await relay.close();
  }
});
