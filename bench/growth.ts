// Linear work, by CPU time: each hostile input at 1× and 8×, the ratio beside
// LINEAR_AT_8X. Run by bench/run.ts, or alone (`npm run bench:growth`, exit 1
// when a ratio reaches the bound). Moved out of `npm test`, where a ratio of
// times on a busy machine was a test that could fail for no fault of the code.
//
// The cases: the multipart splitter on many boundary candidates and on padded
// lines; re-encoding a body of long 8-bit lines; hostile header fields through
// normalize; and 1 MiB runs of every character parsers treat specially, in
// every place they treat it, through the real intake and the whole pipeline
// (header parsing, the From: grammar, encoded-words, normalization, signing,
// self-check) in this thread, with the per-field bound (headers.maxFieldSize)
// raised to the whole header's: it is a second line of defence, and the
// parsers must hold without it. And DATA of dot-stuffed lines through
// smtp-server's parser, the relay's DATA reader and the intake.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { configSchema } from '../src/config/schema.ts';
import { SqliteKeyStore } from '../src/keys/store.ts';
import { receiveMessage } from '../src/message/intake.ts';
import { MAX_ENTITY_HEADER } from '../src/pipeline/normalize/header-block.ts';
import { normalize } from '../src/pipeline/normalize/index.ts';
import { splitMultipart } from '../src/pipeline/normalize/multipart.ts';
import { processMessage, type PipelineOutcome, type PipelineContext } from '../src/pipeline/pipeline.ts';
import { feedDataStream } from '../src/relay/smtp-server-internals.ts';
import { assertTransitSafe, ok, options } from '../test/normalize/support.ts';
import { growth, growthAsync, LINEAR_AT_8X } from './cpu-growth.ts';

export interface GrowthRow {
  what: string;
  /** CPU time at 8× the input over that at 1×. */
  ratio: number;
}

export { LINEAR_AT_8X };

const MIB = 1024 * 1024;
/** A refusal at the first line takes a fraction of a millisecond at either size: compared with this instead. */
const FLOOR_MS = 1;
const HEAD =
  'From: a@example.com\r\nDate: Sun, 22 Nov 2026 09:00:00 +0000\r\nMessage-ID: <p@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n';

function normalizeRows(): GrowthRow[] {
  const rows: GrowthRow[] = [];
  const manyCandidates = (n: number) => Buffer.from('\r\n--b'.repeat(100_000 * n) + 'x'.repeat(10) + '\r\n', 'latin1');
  const paddedLines = (n: number) => Buffer.from(('--b' + ' '.repeat(5000) + 'x\r\n').repeat(1_600 * n), 'latin1');
  rows.push({ what: 'multipart splitter, many boundary candidates', ratio: growth(manyCandidates, (input) => void splitMultipart(input, 'b')) });
  rows.push({ what: 'multipart splitter, padded boundary lines', ratio: growth(paddedLines, (input) => void splitMultipart(input, 'b')) });

  const line = 'Grüße aus Köln, das ist ein Test. '.repeat(60) + '\r\n';
  rows.push({
    what: 're-encoding a body of long 8-bit lines',
    ratio: growth(
      (scale) => Buffer.concat([Buffer.from(HEAD), Buffer.from(line.repeat(1_000 * scale))]),
      (msg) => void ok(normalize(msg, options({ eightBitMime: false }))),
    ),
  });

  // Each field is sized so that its 1× and 8× inputs stay on one side of a step in V8's memory
  // management, and 8× still fits in a header block (MAX_ENTITY_HEADER: beyond it normalize refuses
  // at once). V8 keeps a string, or an array's backing store, of more than 128 KiB in its
  // large-object space, on pages mapped for it alone; on a virtual machine the first touch of such a
  // page can cost twenty times the work of filling it, and stores into such an array take a slower
  // write barrier. A ratio across the step measures that, not the parser's growth. Fields whose work
  // is on strings of their own size: 1× of 15 KB and 8× of 120 KB, both below the step. Fields with a
  // list as long as the field (an edit for each parameter, an encoded-word for each 33 octets): 1× of
  // 125 KB, already past 16,384 entries, and 8× of 1 MB.
  const fields: { field: (n: number) => string; passes: number }[] = [
    { field: (n) => `X-A: ${'a '.repeat(7_500 * n)}`, passes: 80 },
    { field: (n) => `X-B: ${' '.repeat(900)}b${'\t'.repeat(900)}c ${'x'.repeat(990)} `.repeat(5 * n), passes: 80 },
    { field: (n) => `To: ${'('.repeat(15_000 * n)}ü`, passes: 400 },
    { field: (n) => `To: ${'"ä", '.repeat(3_125 * n)}<a@example.com>`, passes: 80 },
    { field: (n) => `Subject: ${'=?ä '.repeat(30_000 * n)}`, passes: 10 },
    { field: (n) => `Content-Type: text/plain; ${'a=ü; '.repeat(25_000 * n)}`, passes: 10 },
  ];
  for (const { field, passes } of fields) {
    const make = (n: number) => Buffer.from(`From: a@example.com\r\n${field(n)}\r\n\r\nbody\r\n`, 'latin1');
    assert.ok(make(8).length < MAX_ENTITY_HEADER, `${field(1).slice(0, 12)}: 8× is past the header block bound`);
    // Many passes: one at 1× takes a millisecond or less, too little to time alone.
    const run = (msg: Buffer) => {
      for (let i = 0; i < passes; i++) {
        const result = normalize(msg, options({ eightBitMime: false }));
        if (result.ok) assertTransitSafe(result.message, true);
        else assert.equal(result.reply.code, 554);
      }
    };
    // A refusal at the first line takes well under a millisecond at either size: compared with FLOOR_MS instead.
    rows.push({ what: `normalize, hostile field ${JSON.stringify(field(1).slice(0, 12))}…`, ratio: growth(make, run, FLOOR_MS) });
  }
  return rows;
}

/** Octets of the run at scale 1; the large input is eight times this, a line of 1 MB in a header of at most 1 MiB (headers.maxSize). */
const RUN = 125_000;

const CLASSES: [string, string][] = [
  ['spaces', ' '],
  ['tabs', '\t'],
  ['dots', '.'],
  ['hyphens', '-'],
  ['dots and hyphens', '.-'],
  ['quotes', '"'],
  ['square brackets', '[]'],
  ['angle brackets', '<'],
  ['"=?"', '=?'],
  ['backslashes', '\\'],
  ['NUL', '\0'],
  ['8-bit octets', '\xe9'],
  ['at signs', '@'],
  ['commas', ','],
  ['open parentheses', '('],
  ['comments', '()'],
];

/** Where the run goes: each yields the header field(s) holding it. */
const PLACES: [string, (run: string) => string][] = [
  // A run with something after it: a backtracking trim walks it again from each of its positions.
  ['after a field name', (run) => `X-Attack${run}x: v`],
  ['at the end of a field name', (run) => `X-Attack${run}: v`],
  ['in a value', (run) => `Subject: a${run}b`],
  ['between words', (run) => `Subject: ${run.slice(0, (run.length * 4) / 5).replace(/(.{16})/gs, '$1 w ')}`],
  ['as a display name', (run) => `From: ${run}<a@example.com>`],
  ['in a quoted display name after "@"', (run) => `From: "x@a${run}a" <a@example.com>`],
  ['in a comment', (run) => `From: a@example.com (${run})`],
  ['in an encoded-word', (run) => `From: =?utf-8?q?${run}?= <a@example.com>`],
  ['in a Subject: encoded-word', (run) => `Subject: =?utf-8*en?b?${run}?=`],
];

/**
 * The same body at every scale, larger than what the intake keeps in memory
 * (128 KiB): the small and the large message then both take the file path,
 * and the comparison is between the same work on different sizes.
 */
const BODY = 'An ordinary body line.\r\n'.repeat(10_000);

function message(field: string): Buffer {
  const from = field.startsWith('From:') ? '' : 'From: a@example.com\r\n';
  return Buffer.from(
    `${from}${field}\r\nTo: b@example.net\r\nDate: Mon, 23 Nov 2026 09:28:00 +0100\r\nMessage-ID: <linear@example.com>\r\n\r\n${BODY}`,
    'latin1',
  );
}

/** The worst class of each place, and whether any run reached the signer (not only the first refusal). */
async function headerRows(): Promise<GrowthRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'dkim-relay-bench-growth-'));
  const store = SqliteKeyStore.open(join(dir, 'keys'));
  try {
    store.generate({ domain: 'example.com', algorithm: 'ed25519', activate: true });
    const intake = join(dir, 'tmp');
    mkdirSync(intake);
    const config = configSchema.parse({ headers: { maxFieldSize: MIB }, keys: { dir: join(dir, 'keys') } });
    // A 7-bit upstream: 8-bit header text is encoded, the most work normalization does.
    const ctx: PipelineContext = { store, config, upstream: { dualSign: false, eightBitMime: false }, hostname: 'relay.test' };
    let delivered = false;
    /** The intake as a session feeds it (64 KiB chunks), then the pipeline. */
    const relay = async (msg: Buffer): Promise<PipelineOutcome> => {
      const chunks = Array.from({ length: Math.ceil(msg.length / 65536) }, (_, i) => msg.subarray(i * 65536, (i + 1) * 65536));
      const received = await receiveMessage(Readable.from(chunks), { maxSize: 35 * MIB, maxHeader: MIB, dir: intake });
      assert.ok(received.ok);
      try {
        return await processMessage(received.message, ctx);
      } finally {
        await received.message.discard();
      }
    };
    const rows: GrowthRow[] = [];
    for (const [place, field] of PLACES) {
      let worst: GrowthRow = { what: '', ratio: 0 };
      for (const [name, chars] of CLASSES) {
        const make = (scale: number) => message(field(chars.repeat(Math.ceil((RUN * scale) / chars.length))));
        // Quadratic work on 125 KB takes far longer than FLOOR_MS (the old trims: seconds).
        const ratio = await growthAsync(make, async (msg) => void ((await relay(msg)).action !== 'refuse' && (delivered = true)), FLOOR_MS);
        if (ratio > worst.ratio) worst = { what: `1 MiB run of ${name} ${place} (the worst of ${CLASSES.length} characters)`, ratio };
      }
      rows.push(worst);
    }
    assert.ok(delivered, 'no run reached the signer: the comparison measured refusals only');
    return rows;
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * DATA whose every line is "..": an escape dot each 4 octets (RFC 5321
 * §4.5.2), fed to smtp-server's parser in data mode in 64 KiB chunks as a
 * socket hands them on, read by the relay's reader and the intake (256 KiB
 * and 2 MiB, both written to a file as they arrive).
 */
async function dataRows(): Promise<GrowthRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'dkim-relay-bench-growth-'));
  try {
    const make = (scale: number) => Buffer.from(`From: a@example.com\r\n\r\n${'..\r\n'.repeat(65_536 * scale)}.\r\n`, 'latin1');
    const receive = async (input: Buffer): Promise<void> => {
      const stream = new SMTPStream();
      stream._feedDataStream = feedDataStream;
      const data = stream.startDataMode();
      stream._endDataMode = (content, _rest, callback) => {
        if (content) data.write(content);
        data.end();
        callback();
      };
      const receiving = receiveMessage(data, { maxSize: 35 * MIB, maxHeader: MIB, dir });
      for (let at = 0; at < input.length; at += 65_536) {
        const chunk = input.subarray(at, at + 65_536);
        await new Promise<void>((resolve, reject) => stream._feedDataStream(chunk, (err) => (err ? reject(err) : resolve())));
      }
      const received = await receiving;
      assert.ok(received.ok);
      await received.message.discard();
    };
    return [{ what: 'DATA of ".." lines, 64 KiB chunks through the reader and the intake', ratio: await growthAsync(make, receive, FLOOR_MS) }];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Every case, in this thread; `say` gets each row as it is measured. */
export async function growthRows(say: (row: GrowthRow) => void = () => {}): Promise<GrowthRow[]> {
  const rows: GrowthRow[] = [];
  for (const row of normalizeRows()) (rows.push(row), say(row));
  for (const row of await headerRows()) (rows.push(row), say(row));
  for (const row of await dataRows()) (rows.push(row), say(row));
  return rows;
}

export const formatRow = (row: GrowthRow) => `  ${row.ratio < LINEAR_AT_8X ? 'linear    ' : 'NOT linear'}  ${row.ratio.toFixed(1).padStart(5)}×  ${row.what}`;

if (import.meta.main) {
  console.log(`CPU time at 8× the input over 1× (linear: well under ${LINEAR_AT_8X}×; quadratic: 64×):`);
  const rows = await growthRows((row) => console.log(formatRow(row)));
  process.exitCode = rows.every((r) => r.ratio < LINEAR_AT_8X) ? 0 : 1;
}
