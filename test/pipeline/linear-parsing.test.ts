// Whatever a header holds, reading it costs time in proportion to its size:
// 1 MiB runs of every character that parsers treat specially, in every place
// they treat it (a field name, a value, a From: display name, quoted string,
// comment, encoded-word), go through the real intake and the whole pipeline
// (header parsing, the From: grammar, encoded-words, normalization, signing,
// self-check) in this thread, and eight times the run may take about eight
// times as long, never sixty-four. The per-field bound
// (headers.maxFieldSize, 64 KiB) is raised to the whole header's here: it is
// a second line of defence, and the parsers must hold without it.
import { replyText } from '../../src/smtp/reply.ts';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { configSchema } from '../../src/config/schema.ts';
import { KeyStore } from '../../src/keys/store.ts';
import { processMessage, type PipelineOutcome, type PipelineContext } from '../../src/pipeline/pipeline.ts';
import { receiveMessage } from '../../src/message/intake.ts';
import { growthAsync, LINEAR_AT_8X } from '../helpers/growth.ts';
import { tempDir } from '../helpers/relay-harness.ts';

/** Octets of the run at scale 1; the large input is eight times this, a line of 1 MB in a header of at most 1 MiB (headers.maxSize). */
const RUN = 125_000;
const MIB = 1024 * 1024;
/** A refusal at the first line takes a fraction of a millisecond at either size: compared with this instead. */
const FLOOR_MS = 1;

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

function message(field: string, body = 'body\r\n'): Buffer {
  const from = field.startsWith('From:') ? '' : 'From: a@example.com\r\n';
  return Buffer.from(`${from}${field}\r\nTo: b@example.net\r\nDate: Mon, 23 Nov 2026 09:28:00 +0100\r\nMessage-ID: <linear@example.com>\r\n\r\n${body}`, 'latin1');
}

describe('header parsing is linear in the size of what a client sends', () => {
  let dir: ReturnType<typeof tempDir>;
  let store: KeyStore;
  let ctx: PipelineContext;
  let intake: string;

  before(() => {
    dir = tempDir();
    store = KeyStore.open(join(dir.path, 'keys'));
    store.generate({ domain: 'example.com', algorithm: 'ed25519', activate: true });
    intake = join(dir.path, 'tmp');
    mkdirSync(intake);
    const config = configSchema.parse({ headers: { maxFieldSize: MIB }, keys: { dir: join(dir.path, 'keys') } });
    // A 7-bit upstream: 8-bit header text is encoded, the most work normalization does.
    ctx = { store, config, upstream: { dualSign: false, eightBitMime: false }, hostname: 'relay.test' };
  });
  after(() => {
    store.close();
    dir.remove();
  });

  /** The intake as a session feeds it (64 KiB chunks), then the pipeline. */
  async function relay(msg: Buffer): Promise<PipelineOutcome> {
    const chunks = Array.from({ length: Math.ceil(msg.length / 65536) }, (_, i) => msg.subarray(i * 65536, (i + 1) * 65536));
    const received = await receiveMessage(Readable.from(chunks), { maxSize: 35 * MIB, maxHeader: MIB, dir: intake });
    assert.ok(received.ok);
    try {
      return await processMessage(received.message, ctx);
    } finally {
      await received.message.discard();
    }
  }

  test('a 1 MiB run of any special character, anywhere in a header', { timeout: 900_000 }, async () => {
    const slow: string[] = [];
    const outcomes = new Set<string>();
    for (const [place, field] of PLACES) {
      for (const [name, chars] of CLASSES) {
        const make = (scale: number) => message(field(chars.repeat(Math.ceil((RUN * scale) / chars.length))), BODY);
        const ratio = await growthAsync(
          make,
          async (msg) => {
            const outcome = await relay(msg);
            outcomes.add(outcome.action === 'refuse' ? `${outcome.reply.code} ${replyText(outcome.reply).slice(0, 30)}` : 'deliver');
          },
          // Quadratic work on 125 KB takes far longer than this (the old trims: seconds).
          FLOOR_MS,
        );
        if (ratio >= LINEAR_AT_8X) slow.push(`${name} ${place}: 8× the run took ${ratio.toFixed(1)}× as long`);
      }
    }
    assert.deepEqual(slow, []);
    // The runs reach the signer, not only the first refusal.
    assert.ok(outcomes.has('deliver'), [...outcomes].join('\n'));
  });

  test('by default a field of more than 64 KiB is refused before parsing; a long line with spaces is refolded', async () => {
    const defaults = { ...ctx, config: configSchema.parse({ keys: { dir: join(dir.path, 'keys') } }) };
    const long = await processMessage(message(`X-Attack${' '.repeat(1_040_000)}: v`), defaults);
    assert.equal(long.action, 'refuse');
    assert.match(long.action === 'refuse' ? `${long.reply.code} ${replyText(long.reply)}` : '', /^552 5\.3\.4 Header field too large: "X-Attack {52}" is 1040011 octets, at most 65536$/);
    // Folded lines count together: the bound is on the field, what a parser unfolds.
    const folded = await processMessage(message(`Subject: ${`${'word '.repeat(180)}\r\n `.repeat(80)}end`), defaults);
    assert.match(folded.action === 'refuse' ? `${folded.reply.code} ${replyText(folded.reply)}` : '', /^552 5\.3\.4 Header field too large: "Subject" is \d+ octets/);
    // Under the bound, a line over 998 octets is refolded at its spaces (RFC 5322 §2.1.1) and signed.
    const refolded = await processMessage(message(`Subject: ${'word '.repeat(12_000)}`), defaults);
    assert.equal(refolded.action, 'deliver', refolded.detail);
    assert.ok(refolded.changes.some((c) => /refolded/.test(c)), refolded.changes.join('; '));
  });

  test('a header that refolding takes past headers.maxLines is refused, not handed to the verifier', async () => {
    // 16 fields of 60 KB, each one line: 17 lines in, 12 000 once folded at 78 columns, where the
    // self-check's verifier (mailauth) joins folded lines in quadratic time.
    const fields = Array.from({ length: 16 }, (_, i) => `X-Words-${i}: ${'w '.repeat(30_000)}`).join('\r\n');
    const outcome = await processMessage(message(fields), { ...ctx, config: configSchema.parse({ keys: { dir: join(dir.path, 'keys') } }) });
    assert.match(outcome.action === 'refuse' ? `${outcome.reply.code} ${replyText(outcome.reply)}` : outcome.action, /^552 5\.3\.4 Header too long once refolded or encoded for the upstream: \d{5} lines, at most 5000$/);
  });
});
