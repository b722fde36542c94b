// normalize(), and beside it normalizeFile() on the same message in a file:
// the two must agree octet for octet (see cross-check-hook.ts). Each message
// checked adds a line to the file named by NORMALIZE_CROSS_CHECK_LOG.
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as real from '../../src/pipeline/normalize/index.ts';
import type { Normalized, NormalizeOptions } from '../../src/pipeline/normalize/options.ts';
import { tempDir } from '../helpers/tmp.ts';

export * from '../../src/pipeline/normalize/index.ts';

let dir: string | undefined;
const NOW = new Date('2026-11-22T09:00:00Z');
// a new Message-ID is random: compare the rest
const maskId = (text: string): string => text.replace(/^Message-ID: <[^>\r\n]*>\r\n/gim, 'Message-ID: <masked>\r\n');

export function normalize(message: Buffer, options: NormalizeOptions): Normalized {
  const result = real.normalize(message, options);
  dir ??= tempDir('normalize-cross-');
  const inPath = join(dir, 'in.eml');
  const outPath = join(dir, 'out.eml');
  writeFileSync(inPath, message);
  rmSync(outPath, { force: true });
  const fixed = { ...options, now: options.now ?? NOW };
  const expected = real.normalize(message, fixed);
  const got = real.normalizeFile(inPath, outPath, fixed);
  if (!expected.ok) {
    assert.deepEqual(got, expected, 'normalizeFile refuses as normalize does');
    assert.ok(!existsSync(outPath), 'no output file is left after a refusal');
  } else if (expected.message === message) {
    assert.deepEqual(got, { ok: true, changed: false, changes: expected.changes });
    assert.ok(!existsSync(outPath), 'no output file when nothing changes');
  } else {
    assert.ok(got.ok && got.changed, `normalizeFile changed the message: ${JSON.stringify(got)}`);
    const written = readFileSync(outPath);
    assert.equal(maskId(written.toString('latin1')), maskId(expected.message.toString('latin1')), 'normalizeFile writes what normalize returns');
    assert.deepEqual(got.changes, expected.changes);
    assert.equal(got.size, written.length);
    assert.ok(written.subarray(0, got.header.length).equals(got.header), 'the header returned opens the file');
  }
  if (process.env.NORMALIZE_CROSS_CHECK_LOG) appendFileSync(process.env.NORMALIZE_CROSS_CHECK_LOG, `${message.length}\n`);
  return result;
}
