// headers.mergeDuplicates over real SMTP: a printer's two To: and two Cc:
// fields arrive as one of each, signed so that dkimpy verifies it.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { verifyWithDkimpy, verifyWithMailDkim } from '../helpers/independent-verify.ts';
import { send, startSink, type Sink } from '../helpers/relay-harness.ts';
import { replyId, startLoggedRelay, type LoggedRelay } from './support.ts';

const MESSAGE = [
  'From: Scanner <scanner@example.com>',
  'To: Alice <alice@example.net>',
  'To: bob@example.net, ALICE@example.net',
  'Cc: carol@example.org',
  'Cc: Dave <dave@example.org>',
  'Subject: Scanned document',
  'Date: Mon, 23 Nov 2026 09:28:00 +0100',
  'Message-ID: <scan-1@example.com>',
  '',
  'See attachment.',
  '',
].join('\r\n');

/** Unfolded values of every field of this name. */
function values(raw: Buffer, name: string): string[] {
  const header = raw
    .toString('latin1')
    .split('\r\n\r\n')[0]!
    .replace(/\r\n(?=[ \t])/g, '');
  return header
    .split('\r\n')
    .filter((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`))
    .map((l) => l.slice(name.length + 1).trim());
}

describe('duplicate address fields over SMTP', () => {
  let sink: Sink;
  let merging: LoggedRelay;
  let refusing: LoggedRelay;

  before(async () => {
    sink = await startSink();
    const upstream = { delivery: { upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port } } };
    merging = await startLoggedRelay(upstream);
    refusing = await startLoggedRelay({ ...upstream, headers: { mergeDuplicates: false } });
  });
  after(async () => {
    await merging.close();
    await refusing.close();
    await sink.close();
  });

  test('merged into one To: and one Cc: with every address, signed, verified, logged', async () => {
    const to = ['alice@example.net', 'bob@example.net', 'carol@example.org', 'dave@example.org'];
    const result = await send({ port: merging.port, from: 'scanner@example.com', to, raw: MESSAGE });
    assert.equal(result.ok, true, JSON.stringify(result));
    const got = sink.received.at(-1)!.raw;
    assert.deepEqual(values(got, 'To'), ['Alice <alice@example.net>, bob@example.net']);
    assert.deepEqual(values(got, 'Cc'), ['carol@example.org, Dave <dave@example.org>']);
    assert.deepEqual(await verifyWithDkimpy(got, merging.records()), [true]);
    assert.deepEqual(await verifyWithMailDkim(got, merging.records()), ['pass']);
    assert.deepEqual(merging.messageLog(replyId(result.ok ? result.response : ''))?.changes, [
      'merged 2 To: fields into one, 1 repeated address removed',
      'merged 2 Cc: fields into one',
    ]);
  });

  test('headers.mergeDuplicates: false refuses 550 as before', async () => {
    const before = sink.received.length;
    const result = await send({ port: refusing.port, from: 'scanner@example.com', to: ['alice@example.net'], raw: MESSAGE });
    assert.equal(!result.ok && result.code, 550, JSON.stringify(result));
    assert.match(result.response, /5\.6\.0 The message has 2 To: headers/);
    assert.equal(sink.received.length, before);
  });
});
