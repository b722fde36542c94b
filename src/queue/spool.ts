// Message files of the queue, one per accepted message over 128 KiB (smaller
// ones are kept in queue.db with their rows: see accept.ts), laid out so an
// administrator can read them:
//
//   <spool>/tmp/<id>.tmp     being written; never acknowledged to a client
//   <spool>/msg/<id>.eml     complete and synced: the signed message as it will leave
//   <spool>/corrupt/         what start-up recovery moved aside, for a person to look at;
//                            removed queue.corruptRetention after it was moved there
//
// A message is made durable the way Postfix's cleanup does it: written under a
// temporary name, fsynced, renamed into msg/, and msg/ itself fsynced, so that
// after a crash or power cut a name in msg/ always holds every byte
// (rename(2) is atomic; the directory fsync makes the new name survive).
// Files are created without following a link, folders must not be links
// (src/common/file-create.ts): a link planted in the spool is refused, never
// written through.
import { randomFillSync } from 'node:crypto';
import { closeSync, createReadStream, mkdirSync, rmSync, write, writeSync, type ReadStream } from 'node:fs';
import { lstat, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createFileSync, refuseLinkedDirectory } from '../common/file-create.ts';
import { spoolError } from '../common/spool-error.ts';
import { FileSync, fsyncAsync } from './file-sync.ts';

/** One write to disk; smaller chunks are gathered into a buffer of this size first. */
const BUFFER_SIZE = 64 * 1024;

const writeAsync = promisify(write);

let lastMs = NaN;
let lastStamp = '';
let sequence = 0;

/** Random bits for ids, drawn 4 KiB at a time: one call into the CSPRNG per 512 ids rather than one each. */
const randomPool = Buffer.allocUnsafe(4096);
let randomAt = randomPool.length;

/** 60 random bits as 12 base-32 digits: two 30-bit halves of 6 digits each. */
function randomDigits(): string {
  if (randomAt + 8 > randomPool.length) {
    randomFillSync(randomPool);
    randomAt = 0;
  }
  const high = randomPool.readUInt32BE(randomAt) >>> 2;
  const low = randomPool.readUInt32BE(randomAt + 4) >>> 2;
  randomAt += 8;
  return high.toString(32).padStart(6, '0') + low.toString(32).padStart(6, '0');
}

/**
 * A new message id such as `20261122T101530123-0003-k3j9x2m4q8ab`: the UTC
 * time to the millisecond (so `ls` and string order are time order), a
 * counter within this process and millisecond, and 60 random bits so two
 * processes never pick the same id.
 */
export function newSpoolId(now: Date = new Date()): string {
  const ms = now.getTime();
  if (ms === lastMs) sequence++;
  else {
    lastMs = ms;
    lastStamp = now.toISOString().replace(/[-:]/g, '').replace('.', '').replace('Z', '');
    sequence = 0;
  }
  return `${lastStamp}-${sequence.toString(36).padStart(4, '0')}-${randomDigits()}`;
}

const ID = /^\d{8}T\d{9}-[0-9a-z]{4}-[0-9a-v]{12}$/;

export function isMessageId(text: string): boolean {
  return ID.test(text);
}

export interface StoredMessage {
  id: string;
  /** Octets written. */
  size: number;
}

/** A message being written; `commit` makes it durable, `abort` leaves nothing behind. */
export class SpoolWriter {
  readonly id: string;
  readonly #spool: Spool;
  /** The open temporary file. */
  readonly #fd: number;
  /** Allocated by the first write, sized by `expect`: a 4 KiB message does not cost a 64 KiB allocation. */
  #buffer: Buffer | null = null;
  #expected = BUFFER_SIZE;
  #filled = 0;
  #size = 0;
  #done = false;

  constructor(spool: Spool, id: string, fd: number) {
    this.#spool = spool;
    this.id = id;
    this.#fd = fd;
  }

  /** The message will be about `size` octets: called before the first write, it spares memory. */
  expect(size: number): void {
    this.#expected = Math.max(1, Math.min(BUFFER_SIZE, size));
  }

  get size(): number {
    return this.#size;
  }

  /** Appends a chunk; the caller may reuse the chunk once the promise resolves. */
  async write(chunk: Uint8Array): Promise<void> {
    if (this.#done) throw new Error(`message ${this.id} is already committed or aborted`);
    try {
      const buffer = (this.#buffer ??= Buffer.allocUnsafe(this.#expected));
      if (this.#filled + chunk.length <= buffer.length) {
        buffer.set(chunk, this.#filled);
        this.#filled += chunk.length;
      } else {
        await this.#flush();
        if (chunk.length < buffer.length) {
          buffer.set(chunk, 0);
          this.#filled = chunk.length;
        } else {
          await writeAll(this.#fd, chunk);
        }
      }
      this.#size += chunk.length;
    } catch (err) {
      this.abort();
      throw spoolError(err);
    }
  }

  /**
   * Syncs the data, renames it into msg/ and syncs msg/: only then may a client be told 250.
   *
   * Each trip through libuv's thread pool costs a wait for the event loop's next turn besides
   * the call, and a busy loop makes that the larger part: the file is created (in begin), its
   * last write made (at most 64 KiB, into the page cache) and closed after its fsync on the
   * event loop, microseconds each on a local disk. The rename stays in the pool: it waits for
   * the journal while msg/ is being synced, which would hold every session (measured). A spool
   * on a network file system that can hang would stall the loop; it belongs on a local disk.
   */
  async commit(): Promise<StoredMessage> {
    if (this.#done) throw new Error(`message ${this.id} is already committed or aborted`);
    try {
      this.#flushSync();
      await fsyncAsync(this.#fd);
      this.#done = true;
      closeSync(this.#fd);
      await rename(this.#spool.tempPath(this.id), this.#spool.path(this.id));
      await this.#spool.syncDirectory('msg');
      return { id: this.id, size: this.#size };
    } catch (err) {
      this.abort();
      removeQuietly(this.#spool.path(this.id));
      throw spoolError(err);
    }
  }

  /** Closes and removes the temporary file. Safe to call more than once. */
  abort(): void {
    if (!this.#done) {
      this.#done = true;
      try {
        closeSync(this.#fd);
      } catch {
        // Already closed or never usable: the file is removed below all the same.
      }
    }
    removeQuietly(this.#spool.tempPath(this.id));
  }

  async #flush(): Promise<void> {
    if (this.#filled === 0 || !this.#buffer) return;
    await writeAll(this.#fd, this.#buffer.subarray(0, this.#filled));
    this.#filled = 0;
  }

  #flushSync(): void {
    if (this.#filled === 0 || !this.#buffer) return;
    for (let offset = 0; offset < this.#filled;) offset += writeSync(this.#fd, this.#buffer, offset, this.#filled - offset);
    this.#filled = 0;
  }
}

/** Removes a file of a message that failed, whatever stands in the way: the failure is what the caller reports. */
function removeQuietly(path: string): void {
  try {
    rmSync(path, { force: true });
  } catch {
    // Start-up recovery clears tmp/ and moves a file of msg/ without index rows aside.
  }
}

/** A chunk written through the thread pool: a large message's 64 KiB writes may wait for the disk. */
async function writeAll(fd: number, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.length) offset += (await writeAsync(fd, data, offset, data.length - offset)).bytesWritten;
}

export class Spool {
  readonly dir: string;
  /** One fsync per folder shared by the renames made while none ran: sessions committing together share it. */
  readonly #folderSyncs: Record<'msg' | 'corrupt', FileSync>;

  /** Creates `dir` and its msg/, tmp/ and corrupt/ folders (mode 0700) if need be; a folder that is a link is refused. */
  constructor(dir: string) {
    this.dir = dir;
    this.#folderSyncs = { msg: new FileSync(join(dir, 'msg')), corrupt: new FileSync(join(dir, 'corrupt')) };
    try {
      for (const sub of ['', 'msg', 'tmp', 'corrupt']) mkdirSync(join(dir, sub), { recursive: true, mode: 0o700 });
      // queue.dir itself may be a link an administrator made; its folders are the relay's own.
      for (const sub of ['msg', 'tmp', 'corrupt']) refuseLinkedDirectory(join(dir, sub));
    } catch (err) {
      throw spoolError(err);
    }
  }

  path(id: string): string {
    return join(this.dir, 'msg', `${id}.eml`);
  }

  tempPath(id: string): string {
    return join(this.dir, 'tmp', `${id}.tmp`);
  }

  /** Starts a new message, under a fresh id unless given one, in tmp/ (created on the event loop: see commit). */
  begin(id: string = newSpoolId()): SpoolWriter {
    try {
      // A new file or an error, never someone else's file reused.
      return new SpoolWriter(this, id, createFileSync(this.tempPath(id), 0o600));
    } catch (err) {
      throw spoolError(err);
    }
  }

  /**
   * Writes a whole message from a buffer or a stream of chunks (a Readable
   * is one), holding only fixed-size buffers, and commits it. On any error
   * nothing is left in tmp/ or msg/.
   */
  async write(source: Uint8Array | AsyncIterable<Uint8Array>, now?: Date): Promise<StoredMessage> {
    const writer = this.begin(newSpoolId(now));
    try {
      if (source instanceof Uint8Array) {
        writer.expect(source.length);
        await writer.write(source);
      } else for await (const chunk of source) await writer.write(chunk);
    } catch (err) {
      writer.abort();
      throw spoolError(err);
    }
    return writer.commit();
  }

  /** The message's bytes, 64 KiB at a time. */
  read(id: string): ReadStream {
    return createReadStream(this.path(id), { highWaterMark: BUFFER_SIZE });
  }

  /** Size of the message file, or undefined when there is none. */
  async size(id: string): Promise<number | undefined> {
    try {
      return (await stat(this.path(id))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /**
   * Removes a message file. Not synced: should the removal be lost in a
   * crash, recovery finds a file without index rows and moves it aside.
   */
  async delete(id: string): Promise<void> {
    // unlink(2) in the thread pool, as rename (see commit); rm() first runs lstat on the event loop.
    try {
      await unlink(this.path(id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  /** Ids of the complete message files, oldest first; other names in msg/ are returned in `other`. */
  async list(): Promise<{ ids: string[]; other: string[] }> {
    const ids: string[] = [];
    const other: string[] = [];
    for (const name of (await readdir(join(this.dir, 'msg'))).sort()) {
      const id = name.endsWith('.eml') ? name.slice(0, -4) : '';
      (isMessageId(id) ? ids : other).push(name);
    }
    return { ids: ids.map((n) => n.slice(0, -4)), other };
  }

  /** Names in tmp/: writes a crash interrupted. */
  async listTemp(): Promise<string[]> {
    return (await readdir(join(this.dir, 'tmp'))).sort();
  }

  async removeTemp(name: string): Promise<void> {
    await rm(join(this.dir, 'tmp', name), { force: true, recursive: true });
  }

  /** Moves a name of msg/ into corrupt/ (durably: both folders are synced). */
  async moveToCorrupt(name: string): Promise<string> {
    const target = join(this.dir, 'corrupt', name);
    await rename(join(this.dir, 'msg', name), target);
    await this.syncDirectory('corrupt');
    await this.syncDirectory('msg');
    return target;
  }

  /**
   * Removes what has been in corrupt/ for `retentionMs` or longer at `now`,
   * counted from when it was moved there (its ctime: rename(2) sets it).
   * Returns the names removed.
   */
  async removeOldCorrupt(now: number, retentionMs: number): Promise<string[]> {
    const dir = join(this.dir, 'corrupt');
    const removed: string[] = [];
    for (const name of (await readdir(dir)).sort()) {
      const path = join(dir, name);
      const info = await lstat(path).catch(() => undefined);
      if (!info || !corruptExpired(info.ctimeMs, now, retentionMs)) continue;
      await rm(path, { force: true, recursive: true });
      removed.push(name);
    }
    return removed;
  }

  /** fsync on a directory makes the names created or renamed in it durable. */
  syncDirectory(sub: 'msg' | 'corrupt'): Promise<void> {
    return this.#folderSyncs[sub].sync();
  }
}

/** Whether something set aside at `since` (ms) is past its retention at `now`. */
export function corruptExpired(since: number, now: number, retentionMs: number): boolean {
  return now - since >= retentionMs;
}
