// A symbolic link planted in the spool is never followed: the file it points
// to (here one of the relay user's, mode 0600) keeps its content and mode,
// and the write fails with one line naming the link.
import { replyText } from '../../src/smtp/reply.ts';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { createFile, LinkRefusedError } from '../../src/common/file-create.ts';
import { normalizeFile } from '../../src/pipeline/normalize/index.ts';
import { QueueIndex } from '../../src/queue/queue-index.ts';
import { Spool } from '../../src/queue/spool.ts';
import { tempDir } from '../helpers/tmp.ts';
import { victim } from '../helpers/victim.ts';

test('queue.db, or its -wal, as a link: refused, the target untouched', () => {
  for (const name of ['queue.db', 'queue.db-wal']) {
    const dir = tempDir();
    const target = victim();
    symlinkSync(target.path, join(dir, name));
    assert.throws(
      () => QueueIndex.open(join(dir, 'queue.db')),
      (err: Error) => {
        assert.ok(err instanceof LinkRefusedError, String(err));
        assert.match(err.message, new RegExp(`${name} is a symbolic link, which dkim-relay does not write through`));
        return true;
      },
    );
    target.unchanged();
  }
});

test('queue.db is made 0600 on its descriptor, whatever the umask', () => {
  const dir = tempDir();
  const old = process.umask(0o000);
  try {
    QueueIndex.open(join(dir, 'queue.db')).close();
  } finally {
    process.umask(old);
  }
  assert.equal(statSync(join(dir, 'queue.db')).mode & 0o777, 0o600);
});

test('a spool folder that is a link is refused; queue.dir itself may be one', () => {
  const dir = tempDir();
  const elsewhere = tempDir('elsewhere-');
  mkdirSync(join(dir, 'spool'));
  symlinkSync(elsewhere, join(dir, 'spool', 'msg'));
  assert.throws(() => new Spool(join(dir, 'spool')), /spool\/msg is a symbolic link/);
  rmSync(join(dir, 'spool', 'msg'));
  symlinkSync(join(dir, 'spool'), join(dir, 'linked'));
  const spool = new Spool(join(dir, 'linked'));
  assert.equal(spool.dir, join(dir, 'linked'));
});

test('spool and intake files: a name taken by a link is refused, the target untouched; new files are 0600', async () => {
  const dir = tempDir();
  const target = victim();
  const taken = join(dir, 'taken.tmp');
  symlinkSync(target.path, taken);
  await assert.rejects(createFile(taken, 0o600), LinkRefusedError);
  target.unchanged();
  const old = process.umask(0o000);
  try {
    const spool = new Spool(join(dir, 'spool'));
    const stored = await spool.write(Buffer.from('Subject: x\r\n\r\nx\r\n'));
    assert.equal(statSync(spool.path(stored.id)).mode & 0o777, 0o600);
  } finally {
    process.umask(old);
  }
});

test('a spool file is 0600 under a umask that would narrow it (the mode given to open(2) alone would not do)', async () => {
  const dir = tempDir();
  const spool = new Spool(join(dir, 'spool'));
  const old = process.umask(0o277);
  let stored;
  try {
    stored = await spool.write(Buffer.from('Subject: x\r\n\r\nx\r\n'));
  } finally {
    process.umask(old);
  }
  assert.equal(statSync(spool.path(stored.id)).mode & 0o777, 0o600);
});

test('the normalized copy of a large message being received is not written through a link', () => {
  const dir = tempDir();
  const target = victim();
  const input = join(dir, 'intake-0123456789abcdef.eml');
  // A long line makes normalization write its copy (RFC 5322 §2.1.1: at most 998 octets).
  writeFileSync(input, `From: a@example.com\r\nSubject: x\r\n\r\n${'x'.repeat(2000)}\r\n`);
  symlinkSync(target.path, `${input}.normalized`);
  const result = normalizeFile(input, `${input}.normalized`, {
    addDate: false,
    addMessageId: false,
    longLines: 'reencode',
    nul: 'reencode',
    refoldHeaders: false,
    mergeDuplicates: false,
    eightBitMime: true,
    messageIdDomain: 'example.com',
  });
  assert.equal(result.ok, false);
  assert.match(!result.ok ? replyText(result.reply) : '', /intake-0123456789abcdef\.eml\.normalized is a symbolic link/);
  target.unchanged();
});
