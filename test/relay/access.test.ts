// Never an open relay: networks, AUTH after STARTTLS, bad passwords; and the
// replies for mail we will not sign (size, unknown domain, self-check).
import assert from 'node:assert/strict';
import { chmodSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { UserError } from '../../src/common/errors.ts';
import { rawSession } from '../helpers/raw-smtp.ts';
import { hashPassword } from '../../src/access/passwords.ts';
import { send, selfSignedCert, startSink, startTestRelay, tempDir, type Sink } from '../helpers/relay-harness.ts';

const MESSAGE = 'From: <app@example.com>\r\nTo: <b@example.net>\r\nSubject: test\r\n\r\nbody\r\n';
const withKey = (store: { generate: (o: { domain: string; algorithm: 'rsa'; activate: boolean }) => unknown }) => {
  store.generate({ domain: 'example.com', algorithm: 'rsa', activate: true });
};

describe('admission', () => {
  let sink: Sink;
  const dir = tempDir();
  let cert: { key: string; cert: string };

  before(async () => {
    sink = await startSink();
    cert = selfSignedCert(dir.path);
  });
  after(async () => {
    await sink.close();
    dir.remove();
  });

  test('a client outside access.networks, with no AUTH configured, is refused 554 5.7.1 on connecting', async () => {
    const relay = await startTestRelay(
      { access: { networks: ['192.0.2.0/24'] }, delivery: { upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port } } },
      withKey,
    );
    try {
      const before = sink.received.length;
      const result = await send({ port: relay.port, from: 'app@example.com', to: ['b@example.net'], raw: MESSAGE });
      assert.equal(!result.ok && result.code, 554);
      assert.match(result.response, /5\.7\.1 127\.0\.0\.1 is not an allowed network/);
      assert.equal(sink.received.length, before);
    } finally {
      await relay.close();
    }
  });

  describe('with AUTH accounts and STARTTLS', () => {
    let relay: Awaited<ReturnType<typeof startTestRelay>>;
    before(async () => {
      relay = await startTestRelay(
        {
          listen: { tls: cert },
          access: { networks: [], users: [{ name: 'exchange', password: await hashPassword('correct horse') }] },
          delivery: { upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port } },
        },
        withKey,
      );
    });
    after(() => relay.close());

    test('an unauthenticated client is told 530 5.7.0', async () => {
      const result = await send({ port: relay.port, from: 'app@example.com', to: ['b@example.net'], raw: MESSAGE, tls: true });
      assert.equal(!result.ok && result.code, 530);
    });

    test('AUTH is not offered before STARTTLS, so the password is never sent in clear, and nothing is relayed', async () => {
      const before = sink.received.length;
      const result = await send({
        port: relay.port,
        from: 'app@example.com',
        to: ['b@example.net'],
        raw: MESSAGE,
        auth: { user: 'exchange', pass: 'correct horse' },
      });
      assert.equal(!result.ok && result.code, 530);
      assert.equal(sink.received.length, before);
    });

    test('a wrong password is refused 535 5.7.8', async () => {
      const result = await send({
        port: relay.port,
        from: 'app@example.com',
        to: ['b@example.net'],
        raw: MESSAGE,
        tls: true,
        auth: { user: 'exchange', pass: 'wrong' },
      });
      assert.equal(!result.ok && result.code, 535);
      assert.match(result.response, /5\.7\.8/);
    });

    test('the right password over STARTTLS relays, signed', async () => {
      const result = await send({
        port: relay.port,
        from: 'app@example.com',
        to: ['b@example.net'],
        raw: MESSAGE,
        tls: true,
        auth: { user: 'exchange', pass: 'correct horse' },
      });
      assert.equal(result.ok, true, JSON.stringify(result));
      assert.match(sink.received.at(-1)!.raw.toString('latin1'), /^Received: from .*\r\n(?:\t.*\r\n)*DKIM-Signature: v=1; a=rsa-sha256/);
    });
  });
});

describe('mail the relay will not sign', () => {
  let sink: Sink;
  before(async () => {
    sink = await startSink();
  });
  after(() => sink.close());

  const upstream = () => ({ type: 'smtp', host: '127.0.0.1', port: sink.port });

  test('a message over listen.maxMessageSize is refused 552 5.3.4', async () => {
    const relay = await startTestRelay({ listen: { maxMessageSize: 2048 }, delivery: { upstream: upstream() } }, withKey);
    try {
      const result = await send({ port: relay.port, from: 'app@example.com', to: ['b@example.net'], raw: MESSAGE + 'x'.repeat(70).concat('\r\n').repeat(100) });
      assert.equal(!result.ok && result.code, 552);
    } finally {
      await relay.close();
    }
  });

  test('a MAIL FROM announcing a SIZE= over listen.maxMessageSize is refused 552 before any octet is sent (RFC 1870)', async () => {
    const relay = await startTestRelay({ listen: { maxMessageSize: 2048 }, delivery: { upstream: upstream() } }, withKey);
    try {
      const session = await rawSession(relay.port);
      assert.match((await session.reply(1)) ?? '', /^220 /);
      session.write('EHLO client.test\r\n');
      assert.match((await session.reply(2)) ?? '', /^250 SIZE 2048$/m, 'the EHLO reply gives the limit');
      session.write('MAIL FROM:<app@example.com> SIZE=2049\r\n');
      assert.match((await session.reply(3)) ?? '', /^552 .*maximum message size 2048$/);
      session.write('MAIL FROM:<app@example.com> SIZE=2048\r\n');
      assert.match((await session.reply(4)) ?? '', /^250 /, 'at the limit is allowed');
      session.write('QUIT\r\n');
      await session.closed;
    } finally {
      await relay.close();
    }
  });

  for (const [policy, code] of [
    ['reject', 550],
    ['tempfail', 451],
  ] as const) {
    test(`signing.unknownDomain: ${policy} answers ${code}`, async () => {
      const relay = await startTestRelay({ signing: { unknownDomain: policy }, delivery: { upstream: upstream() } }, withKey);
      try {
        const result = await send({
          port: relay.port,
          from: 'x@unknown.test',
          to: ['b@example.net'],
          raw: MESSAGE.replace('app@example.com', 'x@unknown.test'),
        });
        assert.equal(!result.ok && result.code, code);
        assert.match(result.response, /no active DKIM key for unknown\.test/);
      } finally {
        await relay.close();
      }
    });
  }

  test('a self-check failure (strict alignment, From: at a subdomain) tempfails 451 4.7.5 and nothing leaves', async () => {
    const relay = await startTestRelay({ selfCheck: { alignment: 'strict' }, delivery: { upstream: upstream() } }, withKey);
    try {
      const before = sink.received.length;
      const result = await send({
        port: relay.port,
        from: 'x@sub.example.com',
        to: ['b@example.net'],
        raw: MESSAGE.replace('app@example.com', 'x@sub.example.com'),
      });
      assert.equal(!result.ok && result.code, 451);
      assert.match(result.response, /4\.7\.5 DKIM self-check failed.*not aligned/);
      assert.equal(sink.received.length, before);
    } finally {
      await relay.close();
    }
  });

  test('selfCheck.onFailure: reject answers 554 5.7.5', async () => {
    const relay = await startTestRelay({ selfCheck: { alignment: 'strict', onFailure: 'reject' }, delivery: { upstream: upstream() } }, withKey);
    try {
      const result = await send({
        port: relay.port,
        from: 'x@sub.example.com',
        to: ['b@example.net'],
        raw: MESSAGE.replace('app@example.com', 'x@sub.example.com'),
      });
      assert.equal(!result.ok && result.code, 554);
    } finally {
      await relay.close();
    }
  });
});

describe('start-up refuses an unsafe or broken key store', () => {
  test('a world-readable key file stops start-up with a UserError saying chmod 600', async () => {
    const dir = tempDir();
    try {
      let keysDir = '';
      await assert.rejects(
        startTestRelay({}, (store) => {
          withKey(store);
          keysDir = store.dir;
          const pem = readdirSync(store.dir).find((f) => f.endsWith('.pem'))!;
          chmodSync(join(store.dir, pem), 0o644);
        }),
        (err: unknown) =>
          err instanceof UserError && /readable by others/.test(err.message) && /chmod 600/.test(err.toLine()) && !/PRIVATE KEY/.test(err.toLine()),
      );
      assert.ok(keysDir);
    } finally {
      dir.remove();
    }
  });
});

describe('sender authorization (clients[].domains)', () => {
  test('a network limited to example.com may send as it and its subdomains, not as another domain', async () => {
    const sink = await startSink();
    const relay = await startTestRelay(
      {
        clients: [{ networks: ['127.0.0.0/8'], domains: ['example.com'] }],
        delivery: { upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port } },
      },
      (store) => {
        withKey(store);
        store.generate({ domain: 'other.example', algorithm: 'rsa', activate: true });
      },
    );
    try {
      assert.equal((await send({ port: relay.port, from: 'app@example.com', to: ['b@example.net'], raw: MESSAGE })).ok, true);
      const sub = MESSAGE.replace('app@example.com', 'scan@hq.example.com');
      assert.equal((await send({ port: relay.port, from: 'scan@hq.example.com', to: ['b@example.net'], raw: sub })).ok, true);
      const forged = await send({
        port: relay.port,
        from: 'app@example.com',
        to: ['b@example.net'],
        raw: MESSAGE.replace('app@example.com', 'ceo@other.example'),
      });
      assert.equal(!forged.ok && forged.code, 550);
      assert.match(forged.response, /5\.7\.1 client 127\.0\.0\.1 may not send as other\.example \(allowed: example\.com\)/);
      assert.equal(sink.received.length, 2);
    } finally {
      await relay.close();
      await sink.close();
    }
  });
});
