// NUL octets over real SMTP: the part holding them arrives base64-encoded,
// decoding to what was sent, signed so that dkimpy and Mail::DKIM (whose
// OpenDKIM-like reading of NUL differs from dkimpy's) both verify it.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { verifyWithDkimpy, verifyWithMailDkim } from '../helpers/independent-verify.ts';
import { send, startSink, type Sink } from '../helpers/relay-harness.ts';
import { replyId, startLoggedRelay, type LoggedRelay } from './support.ts';

const HEAD = [
  'From: Scanner <scan@example.com>',
  'To: b@example.net',
  'Subject: scan',
  'Date: Mon, 23 Nov 2026 09:28:00 +0100',
  'Message-ID: <nul-1@example.com>',
  'MIME-Version: 1.0',
];
const TEXT_BODY = Buffer.from('Before the NUL\0after the NUL\r\nNext line.\r\n', 'latin1');
const TEXT = Buffer.concat([
  Buffer.from([...HEAD, 'Content-Type: text/plain; charset=us-ascii', 'Content-Transfer-Encoding: 7bit', '', ''].join('\r\n')),
  TEXT_BODY,
]);
const CHILD = Buffer.from('id;name\0;x\r\n1;two', 'latin1');
const MULTIPART = Buffer.concat([
  Buffer.from(
    [
      ...HEAD,
      'Content-Type: multipart/mixed; boundary="b1"',
      '',
      '--b1',
      'Content-Type: text/plain',
      '',
      'see the file',
      '--b1',
      'Content-Type: text/csv',
      '',
      '',
    ].join('\r\n'),
  ),
  CHILD,
  Buffer.from('\r\n--b1--\r\n'),
]);

/** Header block and body of an entity, latin1. */
function split(text: string): { header: string; body: string } {
  const at = text.indexOf('\r\n\r\n');
  return { header: text.slice(0, at + 2), body: text.slice(at + 4) };
}

describe('NUL octets in a relayed message', () => {
  let sink: Sink;
  let relay: LoggedRelay;
  let strict: LoggedRelay;

  before(async () => {
    sink = await startSink();
    const upstream = { delivery: { upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port } } };
    relay = await startLoggedRelay(upstream);
    strict = await startLoggedRelay({ ...upstream, normalize: { nul: 'reject' } });
  });
  after(async () => {
    await relay.close();
    await strict.close();
    await sink.close();
  });

  async function relayed(raw: Buffer): Promise<{ message: Buffer; id: string }> {
    const result = await send({ port: relay.port, from: 'scan@example.com', to: ['b@example.net'], raw });
    assert.equal(result.ok, true, JSON.stringify(result));
    const message = sink.received.at(-1)!.raw;
    assert.deepEqual(await verifyWithDkimpy(message, relay.records()), [true]);
    assert.deepEqual(await verifyWithMailDkim(message, relay.records()), ['pass']);
    assert.equal(message.indexOf(0), -1, 'no NUL reaches the upstream');
    return { message, id: replyId(result.ok ? result.response : '') };
  }

  test('a text part: base64, decodes to the original octets, verifies, and the log line says so', async () => {
    const { message, id } = await relayed(TEXT);
    const { header, body } = split(message.toString('latin1'));
    assert.match(header, /^Content-Transfer-Encoding: base64$/m);
    assert.deepEqual(Buffer.from(body.replace(/\r\n/g, ''), 'base64'), TEXT_BODY);
    assert.deepEqual(relay.messageLog(id)?.changes, ['re-encoded text/plain part as base64 (NUL octets)']);
  });

  test('a multipart child: only that child is re-encoded', async () => {
    const { message, id } = await relayed(MULTIPART);
    const text = message.toString('latin1');
    assert.ok(text.includes('\r\n--b1\r\nContent-Type: text/plain\r\n\r\nsee the file\r\n--b1\r\n'), 'the clean part is untouched');
    const child = split(text.slice(text.lastIndexOf('Content-Type: text/csv'), text.indexOf('\r\n--b1--')));
    assert.match(child.header, /^Content-Transfer-Encoding: base64$/m);
    assert.deepEqual(Buffer.from(child.body.replace(/\r\n/g, ''), 'base64'), CHILD);
    assert.deepEqual(relay.messageLog(id)?.changes, ['re-encoded text/csv part 2 as base64 (NUL octets)']);
  });

  test('normalize.nul: reject refuses 554 and nothing goes upstream', async () => {
    const before = sink.received.length;
    const result = await send({ port: strict.port, from: 'scan@example.com', to: ['b@example.net'], raw: MULTIPART });
    assert.equal(!result.ok && result.code, 554, JSON.stringify(result));
    assert.match(result.response, /5\.6\.0 The text\/csv part 2 holds NUL octets/);
    assert.equal(sink.received.length, before);
  });
});
