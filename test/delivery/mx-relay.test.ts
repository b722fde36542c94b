// The relay with `delivery.upstream.type: mx`, end to end: a client sends an
// 8-bit message for two domains; each domain's MX receives it 7-bit, and the
// signature verifies with dkimpy and with our own verifier.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { storeResolver } from '../../src/keys/resolver.ts';
import { verifyMessage } from '../../src/signing/verify.ts';
import { startMxDnsServer } from '../helpers/mx-dns-server.ts';
import { startMxSinks } from '../helpers/mx-sinks.ts';
import { verifyWithDkimpy } from '../helpers/independent-verify.ts';
import { send, startTestRelay } from '../helpers/relay-harness.ts';
import { a, mx } from './mx-world.ts';
import { flat, only, parseWithPython } from '../bounce/support.ts';
import { MESSAGE, withKey } from './upstreams.ts';

test('an 8-bit message to two domains: each MX gets it 7-bit, signed, and the signature verifies', async () => {
  const dns = await startMxDnsServer({
    'a.test': [mx(10, 'mx.a.test')],
    'mx.a.test': [a('127.0.0.2')],
    'b.test': [mx(10, 'mx.b.test')],
    'mx.b.test': [a('127.0.0.3')],
  });
  // Both announce 8BITMIME (smtp-server's default): the message is 7-bit all the same, since it was signed before the hop was known.
  const sinks = await startMxSinks([{ address: '127.0.0.2' }, { address: '127.0.0.3' }]);
  const relay = await startTestRelay(
    {
      delivery: {
        upstream: { type: 'mx', port: sinks.port, resolver: [dns.address], heloName: 'out.relay.test', timeoutSeconds: 5, allowNetworks: ['127.0.0.0/8'] },
      },
    },
    withKey,
  );
  try {
    assert.ok(
      Buffer.from(MESSAGE).some((octet) => octet >= 0x80),
      'the message sent is 8-bit',
    );
    const result = await send({ port: relay.port, from: 'payroll@example.com', to: ['alice@a.test', 'bob@b.test'], raw: MESSAGE });
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.match(
      result.response,
      /^250 2\.0\.0 Delivered to mx\.a\.test \[127\.0\.0\.2\]: Ok: queued at 127\.0\.0\.2; Delivered to mx\.b\.test \[127\.0\.0\.3\]: Ok: queued at 127\.0\.0\.3 \[[0-9a-f]+\]$/,
    );
    for (const [address, to] of [
      ['127.0.0.2', 'alice@a.test'],
      ['127.0.0.3', 'bob@b.test'],
    ] as const) {
      const got = sinks.sinks.get(address)!.received;
      assert.deepEqual(
        got.map((r) => r.to),
        [[to]],
      );
      const raw = got[0]!.raw;
      assert.equal(
        raw.some((octet) => octet >= 0x80),
        false,
        `an 8-bit octet reached ${address}`,
      );
      assert.match(raw.toString('latin1'), /Content-Transfer-Encoding: quoted-printable/i);
      assert.deepEqual(await verifyWithDkimpy(raw, relay.records()), [true]);
      assert.deepEqual(
        (await verifyMessage(raw, storeResolver(relay.store))).signatures.map((s) => s.result),
        ['pass'],
      );
    }
  } finally {
    await relay.close();
    await sinks.close();
    await dns.close();
  }
});

test('queue mode: a receiving host refuses a recipient at RCPT TO; the notice names that host (Remote-MTA) and quotes its reply (Diagnostic-Code)', async () => {
  const dns = await startMxDnsServer({
    'a.test': [mx(10, 'mx.a.test')],
    'mx.a.test': [a('127.0.0.2')],
    // Where the notice to the sender goes.
    'example.com': [mx(10, 'mx.example.com')],
    'mx.example.com': [a('127.0.0.3')],
  });
  const sinks = await startMxSinks([
    { address: '127.0.0.2', rcpt: { 'nobody@a.test': { code: 550, text: '5.1.1 No such user here' } } },
    { address: '127.0.0.3' },
  ]);
  const relay = await startTestRelay(
    {
      delivery: {
        mode: 'queue',
        upstream: { type: 'mx', port: sinks.port, resolver: [dns.address], heloName: 'out.relay.test', timeoutSeconds: 5, allowNetworks: ['127.0.0.0/8'] },
      },
      bounce: { from: 'mailer-daemon@example.com' },
    },
    withKey,
    { closeTimeoutMs: 2000 },
  );
  try {
    const result = await send({ port: relay.port, from: 'payroll@example.com', to: ['nobody@a.test'], raw: MESSAGE });
    assert.equal(result.ok, true, JSON.stringify(result));
    const notices = sinks.sinks.get('127.0.0.3')!.received;
    for (let i = 0; i < 300 && notices.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(notices.length, 1, "one notice reached the sender's MX");
    const parsed = await parseWithPython(notices[0]!.raw);
    const recipient = parsed.parts[1]!.blocks![1]!;
    assert.equal(only(recipient, 'Final-Recipient'), 'rfc822; nobody@a.test');
    assert.equal(only(recipient, 'Remote-MTA'), 'dns; mx.a.test');
    assert.equal(flat(only(recipient, 'Diagnostic-Code')), 'smtp; 550 5.1.1 No such user here');
  } finally {
    await relay.close();
    await sinks.close();
    await dns.close();
  }
});

test('a null-MX domain through the relay: the client hears 556 5.1.10', async () => {
  const dns = await startMxDnsServer({ 'a.test': [mx(0, '.')] });
  const relay = await startTestRelay({ delivery: { upstream: { type: 'mx', port: 25, resolver: [dns.address], timeoutSeconds: 5 } } }, withKey);
  try {
    const result = await send({ port: relay.port, from: 'payroll@example.com', to: ['alice@a.test'], raw: MESSAGE });
    assert.deepEqual(result.ok ? null : [result.code, result.response], [556, '556 5.1.10 The domain a.test accepts no mail (null MX, RFC 7505)']);
  } finally {
    await relay.close();
    await dns.close();
  }
});

/** A port free a moment ago on 127.0.0.1: the relay must listen where its MX will point. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test("an MX pointing at the relay's own listen address and port, heloName unlike listen.hostname: 550 5.4.6, no copy made", async () => {
  const port = await freePort();
  const dns = await startMxDnsServer({ 'a.test': [mx(10, 'mx.a.test')], 'mx.a.test': [a('127.0.0.1')] });
  const relay = await startTestRelay(
    {
      listen: { port, hostname: 'relay.test' },
      delivery: { upstream: { type: 'mx', port, resolver: [dns.address], heloName: 'out.relay.test', timeoutSeconds: 5, allowNetworks: ['127.0.0.0/8'] } },
    },
    withKey,
  );
  try {
    const result = await send({ port: relay.port, from: 'payroll@example.com', to: ['alice@a.test'], raw: MESSAGE });
    assert.deepEqual(result.ok ? null : [result.code, result.response], [
      550,
      `550 5.4.6 Mail for a.test loops back to this relay: mx.a.test [127.0.0.1]: 127.0.0.1 port ${port} is this relay's own listener`,
    ]);
  } finally {
    await relay.close();
    await dns.close();
  }
});
