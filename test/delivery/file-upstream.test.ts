// The file upstream records SMTPUTF8 envelopes as UTF-8 (RFC 6531 §3.3):
// an address holding U+010D U+010A must not become CR LF and a header line.
import { bufferOctets } from '../../src/message/octets.ts';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { FileUpstream } from '../../src/delivery/file-upstream.ts';
import { send, startTestRelay, tempDir } from '../helpers/relay-harness.ts';
import { MESSAGE, withKey } from './upstreams.ts';

const INJECTING = 'x\u010d\u010aX-Injected\u010d\u010a@example.net';

test('through the relay: a UTF-8 address round-trips and cannot inject a header line', async () => {
  const dir = tempDir();
  const relay = await startTestRelay({ delivery: { upstream: { type: 'file', dir: join(dir.path, 'out') } } }, withKey);
  try {
    const result = await send({ port: relay.port, from: 'jörg@example.com', to: [INJECTING, 'zoë@example.net'], raw: MESSAGE });
    assert.equal(result.ok, true, JSON.stringify(result));
    const [file] = readdirSync(join(dir.path, 'out'));
    const raw = readFileSync(join(dir.path, 'out', file!));
    const header = raw.subarray(0, raw.indexOf('\r\n\r\n')).toString('utf8');
    assert.equal(header.split('\r\n').filter((l) => /^x-injected/i.test(l)).length, 0, 'no line of its own may appear');
    const envelopeLines = `Return-Path: <jörg@example.com>\r\nDelivered-To: <${INJECTING}>\r\nDelivered-To: <zoë@example.net>\r\n`;
    assert.equal(header.slice(0, envelopeLines.length), envelopeLines);
    assert.match(header.slice(envelopeLines.length), /^Received: /, "the relay's own trace field follows the envelope lines");
  } finally {
    await relay.close();
    dir.remove();
  }
});

test('an address with a control character is refused, and no file is written', async () => {
  const dir = tempDir();
  const upstream = new FileUpstream({ type: 'file', dir: dir.path, dualSign: true, eightBitMime: true });
  try {
    const answer = await upstream.deliver({ from: 'a@example.com', to: ['x\r\nBcc: v@example.org'] }, bufferOctets(Buffer.from(MESSAGE)));
    assert.equal(answer.code, 553);
    assert.equal(answer.enhanced, '5.1.3');
    assert.deepEqual(
      answer.recipients.map((r) => r.reply.code),
      [553],
    );
    assert.deepEqual(readdirSync(dir.path), []);
  } finally {
    dir.remove();
  }
});

test('outbox/ is made 0700 and each message 0600, whatever the umask', async () => {
  const dir = tempDir();
  const outbox = join(dir.path, 'outbox');
  const old = process.umask(0o022);
  try {
    const upstream = new FileUpstream({ type: 'file', dir: outbox, dualSign: true, eightBitMime: true });
    const answer = await upstream.deliver({ from: 'a@example.com', to: ['b@example.net'] }, bufferOctets(Buffer.from(MESSAGE)));
    assert.equal(answer.code, 250);
    assert.equal(statSync(outbox).mode & 0o777, 0o700);
    const files = readdirSync(outbox);
    assert.equal(files.length, 1);
    assert.equal(statSync(join(outbox, files[0]!)).mode & 0o777, 0o600);
  } finally {
    process.umask(old);
    dir.remove();
  }
});

test('a folder that cannot be written: a 451 naming the folder and the cause, and no temporary file left', async () => {
  const dir = tempDir();
  const notAFolder = join(dir.path, 'outbox');
  writeFileSync(notAFolder, 'a file where the folder should be');
  const upstream = new FileUpstream({ type: 'file', dir: notAFolder, dualSign: true, eightBitMime: true });
  const answer = await upstream.deliver({ from: 'a@example.com', to: ['b@example.net'] }, bufferOctets(Buffer.from(MESSAGE)));
  assert.equal(answer.code, 451);
  assert.equal(answer.enhanced, '4.3.0');
  assert.match(answer.text, /^Cannot write the message into \S+outbox: E(EXIST|NOTDIR), try again later$/);
  assert.deepEqual(readdirSync(dir.path), ['outbox']);

  // Sync mode hands that reply to the client as it is: it says why, and the client keeps the message.
  const relay = await startTestRelay({ delivery: { upstream: { type: 'file', dir: notAFolder } } }, withKey);
  try {
    const result = await send({ port: relay.port, from: 'app@example.com', to: ['b@example.net'], raw: MESSAGE });
    assert.equal(!result.ok && result.code, 451, JSON.stringify(result));
    assert.match(result.response, /4\.3\.0 Cannot write the message into \S+outbox: E(EXIST|NOTDIR)/);
  } finally {
    await relay.close();
    dir.remove();
  }
});
