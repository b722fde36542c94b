// End to end over loopback: client → relay → upstream sink, with every
// signature checked by dkimpy (and Mail::DKIM for RSA) as well as our verify.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { storeResolver } from '../../src/keys/resolver.ts';
import { verifyMessage } from '../../src/signing/verify.ts';
import { verifyWithDkimpy, verifyWithMailDkim } from '../helpers/independent-verify.ts';
import { dkimFields, send, startSink, startTestRelay, type Sink, type TestRelay } from '../helpers/relay-harness.ts';

const MESSAGE = [
  'From: Payroll <payroll@example.com>',
  'To: Alice <alice@example.net>',
  'Subject: Your payslip',
  'Date: Sun, 22 Nov 2026 10:00:00 +0000',
  'Message-ID: <p1@example.com>',
  'MIME-Version: 1.0',
  'Content-Type: text/plain; charset=utf-8',
  '',
  'Hello Alice,',
  '.a line with a leading dot',
  'Grüße',
  '',
].join('\r\n');

/** Everything after the header block, as bytes. */
function body(raw: Buffer): Buffer {
  return raw.subarray(raw.indexOf('\r\n\r\n') + 4);
}

describe('relay: sign, self-check and forward', () => {
  let sink: Sink;
  let relay: TestRelay;

  before(async () => {
    sink = await startSink();
    relay = await startTestRelay({ delivery: { upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port } } }, (store) => {
      store.generate({ domain: 'example.com', algorithm: 'rsa', bits: 2048, activate: true });
      store.generate({ domain: 'example.com', algorithm: 'ed25519', activate: true });
      store.generate({ domain: 'legacy.example', algorithm: 'rsa', bits: 1024, activate: true });
    });
  });
  after(async () => {
    await relay.close();
    await sink.close();
  });

  test('dual-signs (RSA-2048 + Ed25519) and the upstream gets it byte-exact below the signatures', async () => {
    const result = await send({ port: relay.port, from: 'payroll@example.com', to: ['alice@example.net'], raw: MESSAGE });
    assert.equal(result.ok, true, JSON.stringify(result));
    const got = sink.received.at(-1)!;
    assert.deepEqual([got.from, got.to], ['payroll@example.com', ['alice@example.net']]);
    const fields = dkimFields(got.raw);
    assert.equal(fields.length, 2);
    assert.match(fields[0]!, /a=rsa-sha256/);
    assert.match(fields[1]!, /a=ed25519-sha256/);
    assert.deepEqual(body(got.raw), body(Buffer.from(MESSAGE)));
    assert.ok(got.raw.subarray(got.raw.length - Buffer.byteLength(MESSAGE)).equals(Buffer.from(MESSAGE)), 'original bytes follow the signatures unchanged');

    assert.deepEqual(await verifyWithDkimpy(got.raw, relay.records()), [true, true]);
    assert.equal((await verifyWithMailDkim(got.raw, relay.records()))[0], 'pass');
    const ours = await verifyMessage(got.raw, storeResolver(relay.store));
    assert.deepEqual(
      ours.signatures.map((s) => [s.result, s.aligned]),
      [
        ['pass', true],
        ['pass', true],
      ],
    );
  });

  test('RSA-1024 domain', async () => {
    const raw = MESSAGE.replace('payroll@example.com', 'erp@legacy.example');
    assert.equal((await send({ port: relay.port, from: 'erp@legacy.example', to: ['alice@example.net'], raw })).ok, true);
    const got = sink.received.at(-1)!;
    assert.match(dkimFields(got.raw)[0]!, /d=legacy\.example/);
    assert.deepEqual(await verifyWithDkimpy(got.raw, relay.records()), [true]);
    assert.deepEqual(await verifyWithMailDkim(got.raw, relay.records()), ['pass']);
  });

  test('an empty envelope sender (NDR, out-of-office) is signed by its From: domain', async () => {
    const raw = MESSAGE.replace('Payroll <payroll@example.com>', 'Microsoft Outlook <postmaster@example.com>');
    assert.equal((await send({ port: relay.port, from: '', to: ['alice@example.net'], raw })).ok, true);
    const got = sink.received.at(-1)!;
    assert.equal(got.from, '');
    assert.equal(dkimFields(got.raw).length, 2);
    assert.deepEqual(await verifyWithDkimpy(got.raw, relay.records()), [true, true]);
  });

  test('From: at a subdomain is signed by the parent that has the key, and aligns', async () => {
    const raw = MESSAGE.replace('payroll@example.com', 'scanner@branch.example.com');
    assert.equal((await send({ port: relay.port, from: 'scanner@branch.example.com', to: ['alice@example.net'], raw })).ok, true);
    const got = sink.received.at(-1)!;
    assert.match(dkimFields(got.raw)[0]!, /d=example\.com;/);
    assert.deepEqual(await verifyWithDkimpy(got.raw, relay.records()), [true, true]);
  });

  test('bare LF line endings are made CRLF before signing, so the signature survives', async () => {
    const raw = Buffer.from(MESSAGE.replace(/\r\n/g, '\n'));
    assert.equal((await send({ port: relay.port, from: 'payroll@example.com', to: ['alice@example.net'], raw })).ok, true);
    const got = sink.received.at(-1)!;
    assert.deepEqual(await verifyWithDkimpy(got.raw, relay.records()), [true, true]);
  });

  test('a message without From: is refused with 550 5.6.0', async () => {
    const result = await send({ port: relay.port, from: 'a@example.com', to: ['b@example.net'], raw: MESSAGE.replace(/^From:.*\r\n/m, '') });
    assert.deepEqual([result.ok, !result.ok && result.code], [false, 550]);
    assert.match(result.response, /5\.6\.0 .*no From/);
  });

  test('a message with two From: headers is refused with 550 5.6.0', async () => {
    const result = await send({ port: relay.port, from: 'a@example.com', to: ['b@example.net'], raw: 'From: x@evil.test\r\n' + MESSAGE });
    assert.deepEqual([result.ok, !result.ok && result.code], [false, 550]);
    assert.match(result.response, /2 From: headers/);
  });

  test('an unknown From: domain is forwarded unsigned by default', async () => {
    const before = sink.received.length;
    const raw = MESSAGE.replace('payroll@example.com', 'someone@unknown.test');
    assert.equal((await send({ port: relay.port, from: 'someone@unknown.test', to: ['alice@example.net'], raw })).ok, true);
    assert.equal(sink.received.length, before + 1);
    assert.equal(dkimFields(sink.received.at(-1)!.raw).length, 0);
  });
});

describe('relay: sync mode passes the upstream reply through', () => {
  let sink: Sink;
  let relay: TestRelay;

  before(async () => {
    sink = await startSink({
      rcpt: {
        'gone@example.net': { code: 550, text: '5.1.1 <gone@example.net>: Recipient address rejected' },
        'busy@example.net': { code: 451, text: '4.2.1 Mailbox busy, try later' },
      },
    });
    relay = await startTestRelay({ delivery: { upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port } } }, (store) => {
      store.generate({ domain: 'example.com', algorithm: 'rsa', activate: true });
    });
  });
  after(async () => {
    await relay.close();
    await sink.close();
  });

  test('a permanent refusal reaches the client unchanged', async () => {
    const result = await send({ port: relay.port, from: 'payroll@example.com', to: ['gone@example.net'], raw: MESSAGE });
    assert.equal(result.ok, false);
    assert.equal(!result.ok && result.code, 550);
    assert.match(result.response, /^550 5\.1\.1 <gone@example\.net>: Recipient address rejected/);
  });

  test('a temporary refusal reaches the client unchanged', async () => {
    const result = await send({ port: relay.port, from: 'payroll@example.com', to: ['busy@example.net'], raw: MESSAGE });
    assert.equal(!result.ok && result.code, 451);
    assert.match(result.response, /4\.2\.1 Mailbox busy/);
  });

  test('a partial refusal is not acknowledged: the temporary one is passed on', async () => {
    const result = await send({ port: relay.port, from: 'payroll@example.com', to: ['alice@example.net', 'busy@example.net'], raw: MESSAGE });
    assert.equal(!result.ok && result.code, 451);
    assert.match(result.response, /already accepted for alice@example\.net/);
  });

  test('the upstream answer to 250 carries its own text', async () => {
    const result = await send({ port: relay.port, from: 'payroll@example.com', to: ['alice@example.net'], raw: MESSAGE });
    assert.equal(result.ok, true);
    assert.match(result.response, /^250 Ok: queued as SINK1/);
  });
});

describe('relay: upstream DATA refusal and an unreachable upstream', () => {
  test('DATA 554 from the upstream reaches the client; an unreachable upstream gives 451', async () => {
    const sink = await startSink({ data: { code: 554, text: '5.7.1 Message rejected as spam' } });
    const relay = await startTestRelay({ delivery: { upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port } } }, (store) => {
      store.generate({ domain: 'example.com', algorithm: 'ed25519', activate: true });
    });
    try {
      const refused = await send({ port: relay.port, from: 'payroll@example.com', to: ['alice@example.net'], raw: MESSAGE });
      assert.equal(!refused.ok && refused.code, 554);
      assert.match(refused.response, /5\.7\.1 Message rejected as spam/);
      await sink.close();
      const down = await send({ port: relay.port, from: 'payroll@example.com', to: ['alice@example.net'], raw: MESSAGE });
      assert.equal(!down.ok && down.code, 451);
      assert.match(down.response, /4\.4\.1 Upstream unavailable/);
    } finally {
      await relay.close();
    }
  });
});

describe('relay: per-upstream dual signing and the implicit-TLS port', () => {
  test('dualSign: false sends one signature (RSA) to an upstream that refuses two', async () => {
    const sink = await startSink();
    const relay = await startTestRelay({ delivery: { upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port, dualSign: false } } }, (store) => {
      store.generate({ domain: 'example.com', algorithm: 'ed25519', activate: true });
      store.generate({ domain: 'example.com', algorithm: 'rsa', activate: true });
    });
    try {
      assert.equal((await send({ port: relay.port, from: 'payroll@example.com', to: ['alice@example.net'], raw: MESSAGE })).ok, true);
      const fields = dkimFields(sink.received.at(-1)!.raw);
      assert.equal(fields.length, 1);
      assert.match(fields[0]!, /a=rsa-sha256/);
      assert.deepEqual(await verifyWithDkimpy(sink.received.at(-1)!.raw, relay.records()), [true]);
    } finally {
      await relay.close();
      await sink.close();
    }
  });

  test('listen.tlsPort: a client speaking TLS from the first byte is relayed, signed', async () => {
    const { selfSignedCert, tempDir } = await import('../helpers/relay-harness.ts');
    const nodemailer = (await import('nodemailer')).default;
    const dir = tempDir();
    const sink = await startSink();
    const relay = await startTestRelay(
      { listen: { tls: selfSignedCert(dir.path), tlsPort: 0 }, delivery: { upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port } } },
      (store) => {
        store.generate({ domain: 'example.com', algorithm: 'rsa', activate: true });
      },
    );
    const client = nodemailer.createTransport({ host: '127.0.0.1', port: relay.relay.ports.tls!, secure: true, tls: { rejectUnauthorized: false } });
    try {
      assert.ok(relay.relay.ports.tls && relay.relay.ports.tls !== relay.port);
      const info = await client.sendMail({ envelope: { from: 'payroll@example.com', to: ['alice@example.net'] }, raw: MESSAGE });
      assert.match(info.response, /^250 /);
      assert.deepEqual(await verifyWithDkimpy(sink.received.at(-1)!.raw, relay.records()), [true]);
    } finally {
      client.close();
      await relay.close();
      await sink.close();
      dir.remove();
    }
  });
});
