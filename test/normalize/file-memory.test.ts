// normalizeFile holds header blocks and fixed-size buffers, never a body: the
// memory it needs does not grow with the message. Measured in a process of
// its own (file-memory-child.ts), on a 4 MB and a 30 MB version of each
// message; the 30 MB result is decoded and compared with what went in.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { NormalizeOptions } from '../../src/pipeline/normalize/options.ts';
import { tempDir } from '../helpers/tmp.ts';
import { options } from './support.ts';

const MB = 1024 * 1024;
const dir = tempDir('normalize-memory-');
const CHILD = fileURLToPath(new URL('./file-memory-child.ts', import.meta.url));
/** Far above the fixed buffers (a few hundred KiB), far below a 30 MB body. */
const BOUND = 12 * MB;

interface Measured {
  growth: number;
  reads: number;
  result: { ok: boolean; changed?: boolean; changes?: string[]; size?: number };
}

function measure(inPath: string, outPath: string, opts: NormalizeOptions): Measured {
  const run = spawnSync(process.execPath, [CHILD, inPath, outPath, JSON.stringify(opts)], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout) as Measured;
}

/** Writes header and then `body(i)` pieces until the file holds `size` octets of body; returns the body's start. */
function writeMessage(path: string, header: string, size: number, piece: (i: number) => Buffer, trailer = ''): number {
  const fd = openSync(path, 'w');
  const head = Buffer.from(header);
  writeSync(fd, head);
  for (let written = 0, i = 0; written < size; i++) {
    const b = piece(i);
    writeSync(fd, b);
    written += b.length;
  }
  if (trailer) writeSync(fd, trailer);
  closeSync(fd);
  return head.length;
}

const SEVEN_BIT = options({ eightBitMime: false });

// one line of about 1 MB of German text: 8-bit, and a thousand times too long
const LINE = Buffer.from('Grüße aus Köln, das ist ein Test mit = und Tabs\t. '.repeat(20_000).slice(0, 1_000_000) + '\r\n');
const TEXT_HEAD =
  'From: a@example.com\r\nTo: b@example.org\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n';

test('8-bit text in lines of 1 MB: memory does not grow from 4 MB to 30 MB, and the 30 MB result decodes to the input', () => {
  const runs = [4, 30].map((size) => {
    const inPath = join(dir, `text-${size}.eml`);
    const outPath = join(dir, `text-${size}.out`);
    const bodyAt = writeMessage(inPath, TEXT_HEAD, size * MB, () => LINE);
    return { size, inPath, outPath, bodyAt, measured: measure(inPath, outPath, SEVEN_BIT) };
  });
  for (const { size, measured } of runs) {
    assert.ok(measured.result.ok && measured.result.changed, JSON.stringify(measured.result));
    assert.deepEqual(measured.result.changes, [`re-encoded text/plain part as quoted-printable (8-bit data, line of ${LINE.length - 2} octets)`]);
    assert.ok(measured.reads > (size * MB) / (64 * 1024), 'the input is read a window at a time');
    assert.ok(measured.growth < BOUND, `${size} MB: memory grew by ${(measured.growth / MB).toFixed(1)} MB`);
  }
  const [small, large] = runs as [(typeof runs)[0], (typeof runs)[0]];
  assert.ok(
    large.measured.growth - small.measured.growth < 6 * MB,
    `memory grew by ${(small.measured.growth / MB).toFixed(1)} MB at 4 MB, ${(large.measured.growth / MB).toFixed(1)} MB at 30 MB`,
  );

  const input = readFileSync(large.inPath);
  const output = readFileSync(large.outPath);
  assert.equal(output.length, large.measured.result.size);
  const split = output.indexOf('\r\n\r\n') + 4;
  assert.ok(output.subarray(0, split).toString().includes('\r\nContent-Transfer-Encoding: quoted-printable\r\n'));
  assert.ok(decodeQuotedPrintable(output.subarray(split)).equals(input.subarray(large.bodyAt)), 'the quoted-printable body decodes to the original text');
});

test('a multipart with a 30 MB 8-bit attachment: the attachment becomes base64 in bounded memory', () => {
  const block = Buffer.alloc(MB);
  for (let i = 0, x = 1; i < block.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    block[i] = x >>> 24;
  }
  const head =
    'From: a@example.com\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="=_b"\r\n\r\n' +
    '--=_b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee the attachment.\r\n' +
    '--=_b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: 8bit\r\n\r\n';
  const runs = [4, 30].map((size) => {
    const inPath = join(dir, `attachment-${size}.eml`);
    const outPath = join(dir, `attachment-${size}.out`);
    const bodyAt = writeMessage(inPath, head, size * MB, () => block, '\r\n--=_b--\r\n');
    return { size, inPath, outPath, bodyAt, measured: measure(inPath, outPath, SEVEN_BIT) };
  });
  for (const { size, measured } of runs) {
    assert.ok(measured.result.ok && measured.result.changed, JSON.stringify(measured.result));
    assert.match(measured.result.changes![0]!, /^re-encoded application\/octet-stream part 2 as base64 \(8-bit data, NUL octets/);
    assert.ok(measured.growth < BOUND, `${size} MB: memory grew by ${(measured.growth / MB).toFixed(1)} MB`);
  }
  const [small, large] = runs as [(typeof runs)[0], (typeof runs)[0]];
  assert.ok(
    large.measured.growth - small.measured.growth < 6 * MB,
    `memory grew by ${(small.measured.growth / MB).toFixed(1)} MB at 4 MB, ${(large.measured.growth / MB).toFixed(1)} MB at 30 MB`,
  );

  const output = readFileSync(large.outPath).toString('latin1');
  const input = readFileSync(large.inPath);
  const start = output.indexOf('Content-Transfer-Encoding: base64\r\n\r\n') + 'Content-Transfer-Encoding: base64\r\n\r\n'.length;
  const end = output.lastIndexOf('\r\n--=_b--');
  const base64 = output.slice(start, end);
  const lines = base64.split('\r\n');
  assert.ok(
    lines.every((line, i) => (i === lines.length - 1 ? line.length <= 76 : line.length === 76) && /^[A-Za-z0-9+/=]*$/.test(line)),
    'lines of 76',
  );
  assert.ok(Buffer.from(base64, 'base64').equals(input.subarray(large.bodyAt, input.length - '\r\n--=_b--\r\n'.length)));
});

/** RFC 2045 §6.7 decoding on Buffers (the support.ts decoder works on strings, too slow for 30 MB). */
function decodeQuotedPrintable(encoded: Buffer): Buffer {
  const out = Buffer.allocUnsafe(encoded.length);
  let o = 0;
  for (let start = 0; start < encoded.length;) {
    let end = encoded.indexOf('\r\n', start);
    const next = end < 0 ? encoded.length : end + 2;
    if (end < 0) end = encoded.length;
    assert.ok(end - start <= 76, `a line of ${end - start} octets`);
    const soft = encoded[end - 1] === 0x3d;
    for (let i = start; i < (soft ? end - 1 : end); i++) {
      const c = encoded[i]!;
      assert.ok(c < 0x80, 'an 8-bit octet in the quoted-printable text');
      if (c === 0x3d) {
        out[o++] = parseInt(encoded.toString('latin1', i + 1, i + 3), 16);
        i += 2;
      } else {
        out[o++] = c;
      }
    }
    if (!soft && next > end) {
      out[o++] = 0x0d;
      out[o++] = 0x0a;
    }
    start = next;
  }
  return out.subarray(0, o);
}
