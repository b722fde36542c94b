// 8BITMIME and SMTPUTF8 learned from the upstream's EHLO, end to end, with
// the delivered signatures checked by dkimpy.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { SMTPServerOptions } from 'smtp-server';
import { storeResolver } from '../../src/keys/resolver.ts';
import { verifyMessage } from '../../src/signing/verify.ts';
import { verifyWithDkimpy } from '../helpers/independent-verify.ts';
import { send, startTestRelay, type TestRelay } from '../helpers/relay-harness.ts';
import { heldConnections } from '../helpers/tcp-state.ts';
import { until } from '../helpers/until.ts';
import { MESSAGE, startUpstream, withKey, type TestUpstream } from './upstreams.ts';

const FROM = 'payroll@example.com';
const TO = ['alice@example.net'];
const has8bit = (raw: Buffer): boolean => raw.some((b) => b >= 0x80);

async function verified(relay: TestRelay, raw: Buffer): Promise<void> {
  assert.deepEqual(await verifyWithDkimpy(raw, relay.records()), [true]);
  assert.deepEqual(
    (await verifyMessage(raw, storeResolver(relay.store))).signatures.map((s) => s.result),
    ['pass'],
  );
}

async function withRelay(options: Partial<SMTPServerOptions>, run: (up: TestUpstream, relay: TestRelay, mails: string[]) => Promise<void>): Promise<void> {
  const mails: string[] = [];
  const up = await startUpstream({
    ...options,
    onMailFrom: (address, _s, cb) => {
      mails.push(address.address);
      cb();
    },
  });
  const relay = await startTestRelay({ delivery: { upstream: { type: 'smtp', host: '127.0.0.1', port: up.port } } }, withKey);
  try {
    await run(up, relay, mails);
  } finally {
    await relay.close();
    await up.close();
  }
}

describe('eightBitMime: auto (the default)', () => {
  test('an upstream without 8BITMIME gets not one 8-bit octet, and the signature verifies', () =>
    withRelay({ hide8BITMIME: true, hideSMTPUTF8: true }, async (up, relay) => {
      const result = await send({ port: relay.port, from: FROM, to: TO, raw: MESSAGE });
      assert.equal(result.ok, true, JSON.stringify(result));
      const got = up.received.at(-1)!.raw;
      assert.equal(has8bit(got), false, 'no 8-bit octet may reach an upstream that did not announce 8BITMIME');
      assert.match(got.toString('latin1'), /Content-Transfer-Encoding: quoted-printable/i);
      await verified(relay, got);
    }));

  test('an upstream with 8BITMIME gets the 8-bit body as it is', () =>
    withRelay({}, async (up, relay) => {
      assert.equal((await send({ port: relay.port, from: FROM, to: TO, raw: MESSAGE })).ok, true);
      const got = up.received.at(-1)!.raw;
      assert.ok(got.subarray(got.length - Buffer.byteLength(MESSAGE)).equals(Buffer.from(MESSAGE)), 'unchanged below the signature');
      await verified(relay, got);
    }));

  test('an 8-bit envelope address to an upstream without SMTPUTF8: 451 4.6.7 before anything is sent upstream (sync mode: the client retries)', () =>
    withRelay({ hideSMTPUTF8: true }, async (up, relay, mails) => {
      const result = await send({ port: relay.port, from: FROM, to: ['jörg@example.net'], raw: MESSAGE });
      assert.deepEqual(result.ok ? null : [result.code, result.response], [
        451,
        '451 4.6.7 Upstream 127.0.0.1 does not announce SMTPUTF8, which <j?rg@example.net> needs (RFC 6531)',
      ]);
      assert.deepEqual([mails, up.received.length], [[], 0]);
    }));

  test('an 8-bit envelope address to an upstream with SMTPUTF8 goes through', () =>
    withRelay({}, async (up, relay) => {
      assert.equal((await send({ port: relay.port, from: FROM, to: ['jörg@example.net'], raw: MESSAGE })).ok, true);
      assert.deepEqual(up.received.at(-1)!.to, ['jörg@example.net']);
    }));

  test('8-bit header text to an upstream with 8BITMIME but without SMTPUTF8 is encoded (RFC 2047); the signature verifies', () =>
    withRelay({ hideSMTPUTF8: true }, async (up, relay) => {
      const raw = MESSAGE.replace('Subject: Your payslip', 'Subject: Gehaltsabrechnung März');
      assert.equal((await send({ port: relay.port, from: FROM, to: TO, raw })).ok, true);
      const got = up.received.at(-1)!.raw;
      const header = got.subarray(0, got.indexOf('\r\n\r\n'));
      assert.equal(has8bit(header), false);
      assert.equal(has8bit(got.subarray(header.length)), true, '8BITMIME still carries the body as it is');
      await verified(relay, got);
    }));

  test('extensions that change while the relay runs are learned again', () => {
    // This upstream refuses 8-bit data sent without BODY=8BITMIME, as a strict host would.
    const strictData: SMTPServerOptions['onData'] = (stream, session, callback) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks);
        if (has8bit(raw) && session.envelope.bodyType !== '8bitmime') {
          return callback(Object.assign(new Error('5.6.1 8-bit data not allowed without BODY=8BITMIME'), { responseCode: 554 }));
        }
        received.push(raw);
        callback(null, 'Ok');
      });
    };
    const received: Buffer[] = [];
    return withRelay({ onData: strictData }, async (up, relay) => {
      const options = up.server.options as SMTPServerOptions;
      assert.equal((await send({ port: relay.port, from: FROM, to: TO, raw: MESSAGE })).ok, true);
      assert.equal(has8bit(received.at(-1)!), true);

      options.hide8BITMIME = true;
      up.dropConnections();
      await until("the relay's side of the dropped connection closed", () => heldConnections({ to: up.port }) === 0);
      // Signed for the old EHLO; the new connection's EHLO lacks 8BITMIME, so it is re-encoded and signed again for it.
      const first = await send({ port: relay.port, from: FROM, to: TO, raw: MESSAGE });
      assert.equal(first.ok, true, JSON.stringify(first));
      assert.equal(has8bit(received.at(-1)!), false);
      await verified(relay, received.at(-1)!);
      const next = await send({ port: relay.port, from: FROM, to: TO, raw: MESSAGE });
      assert.equal(next.ok, true, JSON.stringify(next));
      assert.equal(has8bit(received.at(-1)!), false);
      await verified(relay, received.at(-1)!);

      options.hide8BITMIME = false;
      up.dropConnections();
      await until("the relay's side of the dropped connection closed", () => heldConnections({ to: up.port }) === 0);
      assert.equal((await send({ port: relay.port, from: FROM, to: TO, raw: MESSAGE })).ok, true);
      assert.equal((await send({ port: relay.port, from: FROM, to: TO, raw: MESSAGE })).ok, true);
      assert.equal(has8bit(received.at(-1)!), true, 'once the new EHLO shows 8BITMIME again, 8-bit goes as it is');
      await verified(relay, received.at(-1)!);
    });
  });
});
