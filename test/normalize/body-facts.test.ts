// The body is scanned once, as it arrives: the normalizer trusts that scan
// for the body and scans the header block alone, with the same result as a
// scan of the whole message.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { receiveMessage } from '../../src/message/intake.ts';
import { scanSpan } from '../../src/message/mime/scan.ts';
import { bufferSource } from '../../src/message/mime/source.ts';
import { readOctets } from '../../src/message/octets.ts';
import { normalize } from '../../src/pipeline/normalize/index.ts';
import { normalizeIncoming } from '../../src/pipeline/normalize-incoming.ts';
import { tempDir } from '../helpers/tmp.ts';
import { options } from './support.ts';

const HEADER = 'From: a@example.com\r\nTo: b@example.net\r\nSubject: facts\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\nMessage-ID: <f@example.com>\r\n\r\n';

test('the body findings given are not scanned again', () => {
  const message = Buffer.from(`${HEADER}${'x'.repeat(1500)}\r\n`);
  const start = Buffer.byteLength(HEADER);
  const clean = { longest: 0, eightBit: false, nul: false };
  const trusted = normalize(message, options({ bodyFacts: { start, findings: clean } }));
  assert.ok(trusted.ok);
  assert.equal(trusted.message, message, 'told the body is clean, nothing is rewritten: it was not read again');

  const found = scanSpan(bufferSource(message), { start, end: message.length });
  const scanned = normalize(message, options({ bodyFacts: { start, findings: found } }));
  const unaided = normalize(message, options({}));
  assert.ok(scanned.ok && unaided.ok);
  assert.notEqual(unaided.message, message, 'the 1500-octet line is re-encoded');
  assert.deepEqual(scanned.message, unaided.message, 'with the true findings, the same result as a scan of the whole');
});

test('a message received with an overlong line is normalized as a whole-message scan would have it', async () => {
  const raw = `${HEADER}short line\r\n${'y'.repeat(2000)}\r\n8-bit: \u00e9\r\n`;
  const received = await receiveMessage(
    (async function* () {
      yield Buffer.from(raw, 'utf8');
    })(),
    { maxSize: 1_000_000, maxHeader: 64 * 1024, dir: tempDir() },
  );
  assert.ok(received.ok);
  const opts = options({ eightBitMime: false });
  const result = await normalizeIncoming(received.message, opts);
  const whole = normalize(Buffer.from(raw, 'utf8'), opts);
  assert.ok(result.ok && whole.ok);
  assert.deepEqual(Buffer.concat([result.header, await readOctets(result.body)]), whole.message);
  await received.message.discard();
});
