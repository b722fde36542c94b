// A client restricted by clients[].domains, over real SMTP sessions: its
// envelope sender must be <> or in its domains (so bounces of its mail cannot
// be aimed at anyone else), and Sender: follows the same rule as From:.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { hashPassword } from '../../src/access/passwords.ts';
import { RawSmtpClient } from '../fuzz/smtp-client.ts';
import { send, startSink, startTestRelay, type Sink, type TestRelay } from '../helpers/relay-harness.ts';

const message = (headers: string) => `${headers}To: <b@example.net>\r\nSubject: test\r\n\r\nbody\r\n`;
const plainAuth = (user: string, pass: string) => `AUTH PLAIN ${Buffer.from(`\0${user}\0${pass}`).toString('base64')}`;

describe('clients[].domains restricts MAIL FROM and Sender:', () => {
  let sink: Sink;
  let relay: TestRelay;
  before(async () => {
    sink = await startSink();
    relay = await startTestRelay(
      {
        listen: { maxAuthFailures: 10 },
        access: { networks: ['127.0.0.1/32', '127.0.0.3/32'], users: [{ name: 'alice', password: await hashPassword('alice pw') }], allowInsecureAuth: true },
        clients: [
          { networks: ['127.0.0.1/32'], domains: ['example.com'] },
          { user: 'alice', domains: ['example.org'] },
        ],
        delivery: { upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port } },
      },
      (store) => {
        store.generate({ domain: 'example.com', algorithm: 'ed25519', activate: true });
        store.generate({ domain: 'example.org', algorithm: 'ed25519', activate: true });
        store.generate({ domain: 'other.example', algorithm: 'ed25519', activate: true });
      },
    );
  });
  after(async () => {
    await relay.close();
    await sink.close();
  });

  const session = async (localAddress: string, auth?: [string, string]) => {
    const c = await RawSmtpClient.connect({ port: relay.port, localAddress });
    assert.equal((await c.readReply(5000))?.code, 220);
    assert.equal((await c.command('EHLO client.example', 5000))?.code, 250);
    if (auth) assert.equal((await c.command(plainAuth(...auth), 10_000))?.code, 235);
    return c;
  };
  const mailFrom = async (c: RawSmtpClient, address: string) => {
    const r = await c.command(`MAIL FROM:<${address}>`, 5000);
    if (r?.code === 250) await c.command('RSET', 5000);
    return r?.raw ?? '(none)';
  };

  test('a restricted network: <> and addresses in its domains; any other envelope sender is refused 550 5.7.1', async () => {
    const c = await session('127.0.0.1');
    try {
      assert.match(await mailFrom(c, ''), /^250 /);
      assert.match(await mailFrom(c, 'app@example.com'), /^250 /);
      assert.match(await mailFrom(c, 'scan@HQ.Example.com'), /^250 /, 'subdomains, in any case');
      assert.match(
        await mailFrom(c, 'ceo@other.example'),
        /^550 5\.7\.1 client 127\.0\.0\.1 may not use the envelope sender <ceo@other\.example> \(allowed: <> or an address at example\.com\)/,
      );
      assert.match(await mailFrom(c, 'victim@notexample.com'), /^550 5\.7\.1 /, 'a domain that merely ends in the same letters');
      assert.match(await mailFrom(c, 'postmaster'), /^5\d\d /, 'no domain at all');
    } finally {
      await c.destroy();
    }
  });

  test('a restricted user, wherever it logs in from; an unrestricted client may use any envelope sender', async () => {
    const alice = await session('127.0.0.2', ['alice', 'alice pw']);
    try {
      assert.match(await mailFrom(alice, 'alice@example.org'), /^250 /);
      assert.match(
        await mailFrom(alice, 'alice@example.com'),
        /^550 5\.7\.1 user alice may not use the envelope sender <alice@example\.com> \(allowed: <> or an address at example\.org\)/,
      );
    } finally {
      await alice.destroy();
    }
    const free = await session('127.0.0.3');
    try {
      assert.match(await mailFrom(free, 'anyone@other.example'), /^250 /);
    } finally {
      await free.destroy();
    }
  });

  test('Sender: of another domain from a restricted client is refused 550 5.7.1, and nothing is relayed', async () => {
    const before = sink.received.length;
    const forged = await send({
      port: relay.port,
      from: 'app@example.com',
      to: ['b@example.net'],
      raw: message('From: <app@example.com>\r\nSender: <ceo@other.example>\r\n'),
    });
    assert.equal(!forged.ok && forged.code, 550, forged.response);
    assert.match(forged.response, /5\.7\.1 client 127\.0\.0\.1 may not send as other\.example in Sender: \(allowed: example\.com\)/);
    assert.equal(sink.received.length, before);
    const own = await send({
      port: relay.port,
      from: 'app@example.com',
      to: ['b@example.net'],
      raw: message('From: <app@example.com>\r\nSender: <secretary@hq.example.com>\r\n'),
    });
    assert.equal(own.ok, true, own.response);
    assert.equal(sink.received.length, before + 1);
  });
});
