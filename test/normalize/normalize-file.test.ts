// normalizeFile reads the message from a file a window at a time and writes
// the result to another file; it must write exactly what normalize returns
// for the same octets, refuse exactly when it refuses, and write nothing when
// nothing changes.
import { replyText } from '../../src/smtp/reply.ts';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { normalize, normalizeFile } from '../../src/pipeline/normalize/index.ts';
import type { NormalizeOptions } from '../../src/pipeline/normalize/options.ts';
import { tempDir } from '../helpers/tmp.ts';
import { base64Body, occurrences, randomMessage, shiftToBorder, sloppyQp, Random, textBody, WINDOW } from './corpus.ts';
import { crlf, options } from './support.ts';

const dir = tempDir('normalize-file-');
const inPath = join(dir, 'in.eml');
const outPath = join(dir, 'out.eml');

const VARIANTS: Partial<NormalizeOptions>[] = [
  {},
  { eightBitMime: false },
  { eightBitMime: false, smtpUtf8: true },
  { nul: 'reject' },
  { longLines: 'reject', eightBitMime: false },
  { addDate: true, now: new Date('2026-11-22T09:00:00Z') },
];

/** normalizeFile against normalize for one message; returns what happened, for counting. */
function compare(name: string, message: Buffer, over: Partial<NormalizeOptions>): 'same' | 'changed' | 'refused' {
  const opts = options(over);
  const expected = normalize(message, opts);
  writeFileSync(inPath, message);
  rmSync(outPath, { force: true });
  const got = normalizeFile(inPath, outPath, opts);
  const what = `${name} ${JSON.stringify(over)}`;
  if (!expected.ok) {
    assert.deepEqual(got, expected, what);
    assert.ok(!existsSync(outPath), `${what}: no file is left after a refusal`);
    return 'refused';
  }
  if (expected.message === message) {
    assert.deepEqual(got, { ok: true, changed: false, changes: expected.changes }, what);
    assert.ok(!existsSync(outPath), `${what}: no file is written when nothing changes`);
    return 'same';
  }
  assert.ok(got.ok && got.changed, `${what}: ${JSON.stringify(got)}`);
  const written = readFileSync(outPath);
  assert.ok(written.equals(expected.message), `${what}: the file differs from normalize() at octet ${firstDifference(written, expected.message)}`);
  assert.deepEqual(got.changes, expected.changes, what);
  assert.equal(got.size, written.length, what);
  const headerEnd = written[0] === 0x0d && written[1] === 0x0a ? 2 : written.indexOf('\r\n\r\n') + 4;
  assert.ok(got.header.equals(headerEnd >= 2 ? written.subarray(0, headerEnd) : written), `${what}: the header returned is the file's header block`);
  return 'changed';
}

function withoutTestContext(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { NODE_TEST_CONTEXT: _, ...rest } = env;
  return rest;
}

function firstDifference(a: Buffer, b: Buffer): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

test('every message the normalization tests use comes out of a file the same', () => {
  const log = join(dir, 'checked.log');
  const here = fileURLToPath(new URL('.', import.meta.url));
  // their timing tests ("linear") are left out: they measure, they do not normalize
  const files = ['eight-bit', 'header-fold', 'long-lines', 'merge-duplicates', 'missing-fields', 'multipart', 'nul'].map((f) => join(here, `${f}.test.ts`));
  const run = spawnSync(
    process.execPath,
    ['--import', join(here, 'cross-check-hook.ts'), '--test', '--test-concurrency=1', '--test-skip-pattern=linear', ...files],
    {
      // a run of its own, not a child reporting to this test runner
      env: { ...withoutTestContext(process.env), NORMALIZE_CROSS_CHECK_LOG: log },
      encoding: 'utf8',
      timeout: 120_000,
    },
  );
  assert.equal(run.status, 0, run.stdout.slice(-3000) + run.stderr.slice(-2000));
  const checked = readFileSync(log, 'utf8').split('\n').filter(Boolean).length;
  assert.ok(checked >= 60, `only ${checked} messages were checked`);
});

test('generated MIME trees, and the same with their delimiters and line ends on window borders', () => {
  const seen = { same: 0, changed: 0, refused: 0 };
  for (let seed = 1; seed <= 40; seed++) {
    const message = randomMessage(seed);
    for (const over of VARIANTS) seen[compare(`seed ${seed}`, message, over)]++;
    if (seed % 8 !== 0) continue;
    for (const needle of ['\r\n--', '\r\n\r\n', '=\r\n']) {
      const at = occurrences(message, needle);
      for (const k of [0, Math.floor(at.length / 2), at.length - 1]) {
        if (at[k] === undefined) continue;
        for (const shift of [0, 1, 2, 3, 5]) {
          const shifted = shiftToBorder(message, at[k]!, shift);
          for (const over of VARIANTS.slice(0, 3)) seen[compare(`seed ${seed} ${JSON.stringify(needle)}@${at[k]}-${shift}`, shifted, over)]++;
        }
      }
    }
  }
  // the corpus exercises all three outcomes
  assert.ok(seen.same > 10 && seen.changed > 100 && seen.refused > 10, JSON.stringify(seen));
});

const HEAD = 'From: a@example.com\r\nMIME-Version: 1.0\r\n';

test('lines of 998 and 999 octets, and CRLFs, on window borders', () => {
  for (const length of [997, 998, 999, 1000]) {
    for (const ending of ['\r\n', '\n', '\r']) {
      const line = 'y'.repeat(length - 4) + 'ü';
      const message = Buffer.from(`${HEAD}Content-Type: text/plain; charset=utf-8\r\n\r\nfirst\r\n${line}${ending}next\r\n`);
      const at = message.indexOf(ending === '\n' ? '\nnext' : ending === '\r' ? '\rnext' : '\r\nnext');
      for (let shift = -2; shift <= 3; shift++) {
        const shifted = shiftToBorder(message, at, shift);
        for (const over of [{}, { eightBitMime: false }, { longLines: 'reject' as const }])
          compare(`line ${length}${JSON.stringify(ending)}-${shift}`, shifted, over);
      }
    }
  }
});

test('a delimiter, a part header end and escapes split across a window border', () => {
  const r = new Random(7);
  const text = textBody(r, 25, { eightBit: true, nul: false, long: true, loneBreaks: true });
  const message = crlf(
    [
      HEAD.trimEnd(),
      'Content-Type: multipart/mixed; boundary="=_b"',
      '',
      'preamble',
      '--=_b',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      sloppyQp(r, text).toString('latin1'),
      '--=_b',
      'Content-Type: application/pdf',
      'Content-Transfer-Encoding: base64',
      '',
      base64Body(r, 50_000, 0).toString('latin1'),
      '--=_b',
      'Content-Type: text/plain',
      '',
      text.toString('latin1'),
      '--=_b--',
      'epilogue',
    ],
    'latin1',
  );
  const points = [
    ...occurrences(message, '\r\n--=_b'),
    ...occurrences(message, '\r\n\r\n').slice(0, 4),
    ...occurrences(message, '=\r\n').slice(0, 2),
    ...occurrences(message, '=C3').slice(0, 2),
  ];
  for (const at of points) {
    for (const shift of [-1, 0, 1, 2, 3, 5]) {
      for (const over of [{}, { eightBitMime: false }]) compare(`split at ${at}-${shift}`, shiftToBorder(message, at, shift), over);
    }
  }
});

test('a message larger than a window that needs nothing writes no file', () => {
  const message = Buffer.from(`${HEAD}Subject: s\r\n\r\n${'An ordinary line.\r\n'.repeat((3 * WINDOW) / 19)}`);
  assert.equal(compare('plain', message, {}), 'same');
});

test('a file that cannot be read is a temporary failure, not a throw', () => {
  const got = normalizeFile(join(dir, 'missing.eml'), outPath, options());
  assert.equal(got.ok, false);
  assert.ok(!got.ok && got.reply.code === 451 && /^4\.3\.0 /.test(replyText(got.reply)), JSON.stringify(got));
});

test('a part with no empty line is not read whole as its header: past 1 MiB it is refused, in memory and from a file alike', () => {
  const headerless = Buffer.alloc(3 * 1024 * 1024, 'X-Line: grüße aus dem Anhang\r\n');
  const message = Buffer.concat([
    crlf(['From: a@example.com', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="b"', '', '--b']),
    headerless,
    crlf(['--b--']),
  ]);
  assert.equal(compare('headerless part', message, { eightBitMime: false }), 'refused');
  const refused = normalize(message, options({ eightBitMime: false }));
  assert.ok(!refused.ok);
  assert.equal(refused.reply.code, 554);
  assert.match(replyText(refused.reply), /part 1 .*header block is over 1048576 octets/);
});
