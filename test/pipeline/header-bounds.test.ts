// The bounds that keep header parsing cheap whatever a client sends: a field
// over headers.maxFieldSize is refused before any parser reads it, and a
// header that refolding would take past headers.maxLines is refused before the
// self-check's verifier sees it. That the parsers stay linear without these
// bounds is measured, by CPU time, in `npm run bench` (bench/growth.ts).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { configSchema } from '../../src/config/schema.ts';
import { SqliteKeyStore } from '../../src/keys/store.ts';
import type { KeyStore } from '../../src/keys/key-store.ts';
import { processMessage, type PipelineContext } from '../../src/pipeline/pipeline.ts';
import { replyLine } from '../../src/smtp/reply.ts';
import { tempDir } from '../helpers/relay-harness.ts';

function message(field: string, body = 'body\r\n'): Buffer {
  const from = field.startsWith('From:') ? '' : 'From: a@example.com\r\n';
  return Buffer.from(
    `${from}${field}\r\nTo: b@example.net\r\nDate: Mon, 23 Nov 2026 09:28:00 +0100\r\nMessage-ID: <linear@example.com>\r\n\r\n${body}`,
    'latin1',
  );
}

describe('header bounds, before any parser', () => {
  let dir: ReturnType<typeof tempDir>;
  let store: KeyStore;
  let ctx: PipelineContext;

  before(() => {
    dir = tempDir();
    store = SqliteKeyStore.open(join(dir.path, 'keys'));
    store.generate({ domain: 'example.com', algorithm: 'ed25519', activate: true });
    const config = configSchema.parse({ keys: { dir: join(dir.path, 'keys') } });
    // A 7-bit upstream: 8-bit header text is encoded, the most work normalization does.
    ctx = { store, config, upstream: { dualSign: false, eightBitMime: false }, hostname: 'relay.test' };
  });
  after(() => {
    store.close();
    dir.remove();
  });

  test('by default a field of more than 64 KiB is refused before parsing; a long line with spaces is refolded', async () => {
    const defaults = { ...ctx, config: configSchema.parse({ keys: { dir: join(dir.path, 'keys') } }) };
    const long = await processMessage(message(`X-Attack${' '.repeat(1_040_000)}: v`), defaults);
    assert.equal(long.action, 'refuse');
    assert.match(
      long.action === 'refuse' ? `${replyLine(long.reply)}` : '',
      /^552 5\.3\.4 Header field too large: "X-Attack {52}" is 1040011 octets, at most 65536$/,
    );
    // Folded lines count together: the bound is on the field, what a parser unfolds.
    const folded = await processMessage(message(`Subject: ${`${'word '.repeat(180)}\r\n `.repeat(80)}end`), defaults);
    assert.match(folded.action === 'refuse' ? `${replyLine(folded.reply)}` : '', /^552 5\.3\.4 Header field too large: "Subject" is \d+ octets/);
    // Under the bound, a line over 998 octets is refolded at its spaces (RFC 5322 §2.1.1) and signed.
    const refolded = await processMessage(message(`Subject: ${'word '.repeat(12_000)}`), defaults);
    assert.equal(refolded.action, 'deliver', refolded.detail);
    assert.ok(
      refolded.changes.some((c) => /refolded/.test(c)),
      refolded.changes.join('; '),
    );
  });

  test('a header that refolding takes past headers.maxLines is refused, not handed to the verifier', async () => {
    // 16 fields of 60 KB, each one line: 17 lines in, 12 000 once folded at 78 columns, where the
    // self-check's verifier (mailauth) joins folded lines in quadratic time.
    const fields = Array.from({ length: 16 }, (_, i) => `X-Words-${i}: ${'w '.repeat(30_000)}`).join('\r\n');
    const outcome = await processMessage(message(fields), { ...ctx, config: configSchema.parse({ keys: { dir: join(dir.path, 'keys') } }) });
    assert.match(
      outcome.action === 'refuse' ? `${replyLine(outcome.reply)}` : outcome.action,
      /^552 5\.3\.4 Header too long once refolded or encoded for the upstream: \d{5} lines, at most 5000$/,
    );
  });
});
