// Every way the smart host can fail on the relay's side of the connection,
// end to end: client → relay → a misbehaving upstream on loopback. None may
// reach the client as a 5xx (it would bounce the mail); each names the setting.
import { bufferOctets } from '../../src/message/octets.ts';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { configSchema } from '../../src/config/schema.ts';
import { SmtpUpstream } from '../../src/delivery/smtp-upstream.ts';
import { selfSignedCert, send, startSink, startTestRelay, tempDir } from '../helpers/relay-harness.ts';
import { MESSAGE, startScriptedUpstream, startUpstream, withKey } from './upstreams.ts';

const FROM = 'payroll@example.com';
const TO = ['alice@example.net'];

/** One message through a fresh relay whose upstream is `upstream` (merged into an smtp upstream at 127.0.0.1). */
async function relayTo(upstream: Record<string, unknown>): Promise<{ code: number | undefined; response: string }> {
  const relay = await startTestRelay({ delivery: { upstream: { type: 'smtp', host: '127.0.0.1', timeoutSeconds: 5, ...upstream } } }, withKey);
  try {
    const result = await send({ port: relay.port, from: FROM, to: TO, raw: MESSAGE });
    return result.ok ? { code: 250, response: result.response } : { code: result.code, response: result.response };
  } finally {
    await relay.close();
  }
}

const authFailure = (code: number, text: string) => Object.assign(new Error(text), { responseCode: code });

describe("upstream failures on the relay's side are temporary and name the setting", () => {
  test('requireTLS against a host without STARTTLS: 451 4.7.10, not "500 command not recognized"', async () => {
    const up = await startUpstream();
    try {
      const got = await relayTo({ port: up.port, requireTLS: true });
      assert.equal(got.code, 451, got.response);
      assert.match(got.response, /^451 4\.7\.10 delivery\.upstream\.requireTLS is set but 127\.0\.0\.1 offers no STARTTLS \(it answered "500 /);
      assert.equal(up.received.length, 0);
    } finally {
      await up.close();
    }
  });

  test('a wrong delivery.upstream.auth password: 451 4.7.8 naming the user, not 535', async () => {
    const up = await startUpstream({
      disabledCommands: ['STARTTLS'],
      allowInsecureAuth: true,
      onAuth: (_a, _s, cb) => cb(authFailure(535, '5.7.8 bad creds')),
    });
    try {
      const got = await relayTo({ port: up.port, auth: { user: 'relay-user', pass: 'wrong' }, allowInsecureAuth: true });
      assert.equal(got.code, 451, got.response);
      assert.match(got.response, /^451 4\.7\.8 upstream 127\.0\.0\.1 refused delivery\.upstream\.auth for user relay-user: 535 5\.7\.8 bad creds/);
      assert.doesNotMatch(got.response, /wrong/, 'the password is never quoted');
    } finally {
      await up.close();
    }
  });

  test('AUTH answered 454: 451 4.7.0', async () => {
    const up = await startUpstream({
      disabledCommands: ['STARTTLS'],
      allowInsecureAuth: true,
      onAuth: (_a, _s, cb) => cb(authFailure(454, '4.7.0 Temporary authentication failure')),
    });
    try {
      const got = await relayTo({ port: up.port, auth: { user: 'relay-user', pass: 'x' }, allowInsecureAuth: true });
      assert.match(got.response, /^451 4\.7\.0 upstream 127\.0\.0\.1 could not check delivery\.upstream\.auth for user relay-user now: 454/);
    } finally {
      await up.close();
    }
  });

  test('AUTH not offered while delivery.upstream.auth is set: 451, and nothing is sent unauthenticated', async () => {
    const up = await startUpstream();
    try {
      const got = await relayTo({ port: up.port, auth: { user: 'relay-user', pass: 'x' }, allowInsecureAuth: true });
      assert.equal(got.code, 451, got.response);
      assert.match(got.response, /^451 4\.7\.0 upstream 127\.0\.0\.1 offers no AUTH, but delivery\.upstream\.auth for user relay-user is set/);
      assert.equal(up.received.length, 0, 'the message must not go out without the login');
    } finally {
      await up.close();
    }
  });

  test('connection refused: 451 4.4.1 Upstream unavailable', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as { port: number }).port;
    await new Promise((resolve) => closed.close(resolve));
    const got = await relayTo({ port });
    assert.match(
      got.response,
      new RegExp(`^451 4\\.4\\.1 Upstream unavailable: connection refused \\(delivery\\.upstream\\.host 127\\.0\\.0\\.1, port ${port}\\)`),
    );
  });

  test('a self-signed certificate with rejectUnauthorized: 451 4.7.5 naming the setting', async () => {
    const dir = tempDir();
    const { key, cert } = selfSignedCert(dir.path);
    const { readFileSync } = await import('node:fs');
    const up = await startUpstream({ secure: true, key: readFileSync(key), cert: readFileSync(cert) });
    try {
      const got = await relayTo({ port: up.port, secure: true });
      assert.equal(got.code, 451, got.response);
      assert.match(
        got.response,
        /^451 4\.7\.5 the TLS certificate of upstream 127\.0\.0\.1 was not accepted \(self[- ]signed certificate[^)]*\): .*delivery\.upstream\.rejectUnauthorized: false/,
      );
    } finally {
      await up.close();
      dir.remove();
    }
  });

  test('implicit TLS against a plain port: 451 4.7.5 naming secure', async () => {
    const up = await startUpstream();
    try {
      const got = await relayTo({ port: up.port, secure: true });
      assert.equal(got.code, 451, got.response);
      assert.match(got.response, /^451 4\.7\.5 TLS with upstream 127\.0\.0\.1:\d+ failed .*delivery\.upstream\.secure/);
    } finally {
      await up.close();
    }
  });

  for (const greeting of ['554 5.7.1 Your IP is not allowed here', '421 4.3.2 Service not available']) {
    test(`greeting "${greeting}": 451 4.4.1`, async () => {
      const up = await startScriptedUpstream(greeting);
      try {
        const got = await relayTo({ port: up.port });
        assert.equal(got.code, 451, got.response);
        assert.match(got.response, new RegExp(`^451 4\\.4\\.1 upstream 127\\.0\\.0\\.1 refused the session \\(it answered "${greeting}"\\)`));
      } finally {
        await up.close();
      }
    });
  }

  test('EHLO and HELO refused: 451 4.5.0 naming delivery.upstream.name', async () => {
    const up = await startScriptedUpstream('220 odd.test ESMTP', (line) => (/^(EHLO|HELO)/i.test(line) ? '550 5.7.1 Go away' : null));
    try {
      const got = await relayTo({ port: up.port, name: 'dkim.test' });
      assert.equal(got.code, 451, got.response);
      assert.match(
        got.response,
        /^451 4\.5\.0 upstream 127\.0\.0\.1 did not accept HELO dkim\.test \(it answered "550 5\.7\.1 Go away"\): check delivery\.upstream\.name/,
      );
    } finally {
      await up.close();
    }
  });

  test('STARTTLS announced but refused: 451 4.7.0', async () => {
    const up = await startScriptedUpstream('220 odd.test ESMTP', (line) => {
      if (/^EHLO/i.test(line)) return '250-odd.test\r\n250 STARTTLS';
      if (/^STARTTLS/i.test(line)) return '554 5.7.0 TLS not available';
      return null;
    });
    try {
      const got = await relayTo({ port: up.port });
      assert.equal(got.code, 451, got.response);
      assert.match(got.response, /^451 4\.7\.0 upstream 127\.0\.0\.1 announced STARTTLS but refused it \(it answered "554 5\.7\.0 TLS not available"\)/);
    } finally {
      await up.close();
    }
  });

  test('MAIL FROM answered "530 authentication required": the relay\'s configuration, 451', async () => {
    const up = await startUpstream({ onMailFrom: (_a, _s, cb) => cb(authFailure(530, '5.7.0 Authentication required')) });
    try {
      const got = await relayTo({ port: up.port });
      assert.equal(got.code, 451, got.response);
      assert.match(got.response, /^451 4\.7\.0 upstream 127\.0\.0\.1 requires a login .*: set delivery\.upstream\.auth/);
    } finally {
      await up.close();
    }
  });

  test('RCPT TO answered "554 Relay access denied": 451 4.7.1; a real recipient refusal stays the upstream\'s', async () => {
    const sink = await startSink({
      rcpt: {
        'alice@example.net': { code: 554, text: '5.7.1 <alice@example.net>: Relay access denied' },
        'nobody@example.net': { code: 550, text: '5.1.1 no such user' },
      },
    });
    try {
      const denied = await relayTo({ port: sink.port });
      assert.match(denied.response, /^451 4\.7\.1 upstream 127\.0\.0\.1 refused to relay for us .*Relay access denied.*: set delivery\.upstream\.auth/);
      const relay = await startTestRelay({ delivery: { upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port } } }, withKey);
      try {
        const unknown = await send({ port: relay.port, from: FROM, to: ['nobody@example.net'], raw: MESSAGE });
        assert.deepEqual(unknown.ok ? null : [unknown.code, unknown.response], [550, '550 5.1.1 no such user']);
      } finally {
        await relay.close();
      }
    } finally {
      await sink.close();
    }
  });

  test('a relay-side failure is logged at error level, with the reason', async () => {
    const up = await startUpstream();
    const lines: { level: number; msg: string; reply?: string }[] = [];
    const logger = pino(
      { level: 'info' },
      new Writable({
        write(chunk, _e, cb) {
          lines.push(JSON.parse(String(chunk)));
          cb();
        },
      }),
    );
    const config = configSchema.parse({ delivery: { upstream: { type: 'smtp', host: '127.0.0.1', port: up.port, requireTLS: true, timeoutSeconds: 5 } } })
      .delivery.upstream;
    assert.equal(config.type, 'smtp');
    const upstream = new SmtpUpstream(config as Extract<typeof config, { type: 'smtp' }>, logger);
    try {
      await upstream.ready();
      const answer = await upstream.deliver({ from: FROM, to: TO }, bufferOctets(Buffer.from(MESSAGE.replace('Grüße', 'Hello'))));
      assert.equal(answer.code, 451);
      // (The probe's failure is an error line of its own, the background task extension-probe's.)
      const logged = lines.find((l) => l.level === 50 && l.msg === "upstream delivery failed on the relay's side");
      assert.ok(logged, JSON.stringify(lines));
      assert.match(logged.reply ?? '', /^451 4\.7\.10 delivery\.upstream\.requireTLS is set/);
    } finally {
      await upstream.close();
      await up.close();
    }
  });
});
