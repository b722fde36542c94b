// Direct delivery: opportunistic STARTTLS (RFC 7435), requireTLS, and the
// connection limits per destination domain and in all.
import assert from 'node:assert/strict';
import { replyText } from '../../src/smtp/reply.ts';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { selfSignedCert, tempDir } from '../helpers/relay-harness.ts';
import { a, mx, PLAIN_MESSAGE, withMxWorld } from './mx-world.ts';
import { bufferOctets } from '../../src/message/octets.ts';

const FROM = 'payroll@example.com';
const ROUTES = { 'a.test': [mx(10, 'mx1.a.test')], 'mx1.a.test': [a('127.0.0.2')] };

describe('STARTTLS', () => {
  const dir = tempDir();
  let tls: { key: Buffer; cert: Buffer };
  before(() => {
    const files = selfSignedCert(dir.path);
    tls = { key: readFileSync(files.key), cert: readFileSync(files.cert) };
  });
  after(() => dir.remove());

  test('used when offered, with a certificate that does not verify, and recorded in the log line', () =>
    withMxWorld(ROUTES, [{ address: '127.0.0.2', options: tls }], async ({ upstream, sinks, lines }) => {
      const report = await upstream.deliver({ from: FROM, to: ['alice@a.test'] }, bufferOctets(PLAIN_MESSAGE));
      assert.equal(report.code, 250, report.text);
      assert.deepEqual(
        sinks.sinks.get('127.0.0.2')!.received.map((r) => r.secure),
        [true],
      );
      const line = lines.find((l) => l.msg === 'mx delivery')!;
      assert.match(String(line.tls), /^TLSv1\.[23]$/);
      assert.match(String(line.certificate), /^not verified \(.+\)$/);
    }));

  test('not offered: plaintext, recorded as tls "none"', () =>
    withMxWorld(ROUTES, [{ address: '127.0.0.2' }], async ({ upstream, sinks, lines }) => {
      assert.equal((await upstream.deliver({ from: FROM, to: ['alice@a.test'] }, bufferOctets(PLAIN_MESSAGE))).code, 250);
      assert.deepEqual(
        sinks.sinks.get('127.0.0.2')!.received.map((r) => r.secure),
        [false],
      );
      assert.equal(lines.find((l) => l.msg === 'mx delivery')!.tls, 'none');
    }));

  test('requireTLS and a host without STARTTLS: 451 4.7.10, nothing sent in the clear', () =>
    withMxWorld(
      ROUTES,
      [{ address: '127.0.0.2' }],
      async ({ upstream, sinks }) => {
        const report = await upstream.deliver({ from: FROM, to: ['alice@a.test'] }, bufferOctets(PLAIN_MESSAGE));
        assert.equal(report.code, 451);
        assert.match(replyText(report), /^4\.7\.10 mx1\.a\.test \[127\.0\.0\.2\]:\d+ refused STARTTLS: "500 .*", and delivery\.upstream\.requireTLS is set$/);
        assert.deepEqual(sinks.sinks.get('127.0.0.2')!.offered, []);
      },
      { requireTLS: true },
    ));

  test('requireTLS and a host with STARTTLS: delivered encrypted', () =>
    withMxWorld(
      ROUTES,
      [{ address: '127.0.0.2', options: tls }],
      async ({ upstream, sinks }) => {
        assert.equal((await upstream.deliver({ from: FROM, to: ['alice@a.test'] }, bufferOctets(PLAIN_MESSAGE))).code, 250);
        assert.deepEqual(
          sinks.sinks.get('127.0.0.2')!.received.map((r) => r.secure),
          [true],
        );
      },
      { requireTLS: true },
    ));

  test('a TLS handshake that fails: the same host again in plaintext (RFC 7435 §3)', () =>
    withMxWorld(
      ROUTES,
      // The host speaks TLS 1.1 at most, and we 1.2 at least, so the handshake fails.
      [{ address: '127.0.0.2', options: { ...tls, maxVersion: 'TLSv1.1' } }],
      async ({ upstream, sinks, lines }) => {
        const report = await upstream.deliver({ from: FROM, to: ['alice@a.test'] }, bufferOctets(PLAIN_MESSAGE));
        assert.equal(report.code, 250, report.text);
        assert.deepEqual(
          sinks.sinks.get('127.0.0.2')!.received.map((r) => r.secure),
          [false],
        );
        assert.ok(
          lines.some((l) => l.msg === 'mx session failed' && /^451 4\.4\.2 TLS with mx1\.a\.test/.test(String(l.reason))),
          JSON.stringify(lines),
        );
      },
    ));
});

describe('connection limits', () => {
  test('10 messages at once to one domain never hold more than maxConnectionsPerDomain connections to it', () =>
    withMxWorld(
      { ...ROUTES, 'b.test': [mx(10, 'mx1.b.test')], 'mx1.b.test': [a('127.0.0.3')] },
      [{ address: '127.0.0.2' }, { address: '127.0.0.3' }],
      async ({ upstream, sinks }) => {
        const reports = await Promise.all(
          Array.from({ length: 10 }, (_, i) => upstream.deliver({ from: FROM, to: [`user${i}@a.test`, `user${i}@b.test`] }, bufferOctets(PLAIN_MESSAGE))),
        );
        assert.deepEqual(
          reports.map((r) => r.code),
          Array(10).fill(250),
        );
        for (const address of ['127.0.0.2', '127.0.0.3']) {
          const sink = sinks.sinks.get(address)!;
          assert.equal(sink.received.length, 10);
          assert.ok(sink.peakConnections <= 2, `${address} had ${sink.peakConnections} connections at once`);
        }
      },
      { maxConnectionsPerDomain: 2 },
    ));

  test('maxConnections bounds the connections to all domains together', () =>
    withMxWorld(
      { ...ROUTES, 'b.test': [mx(10, 'mx1.b.test')], 'mx1.b.test': [a('127.0.0.2')] },
      [{ address: '127.0.0.2' }],
      async ({ upstream, sinks }) => {
        const reports = await Promise.all(
          Array.from({ length: 6 }, (_, i) => upstream.deliver({ from: FROM, to: [`user${i}@a.test`, `user${i}@b.test`] }, bufferOctets(PLAIN_MESSAGE))),
        );
        assert.deepEqual(
          reports.map((r) => r.code),
          Array(6).fill(250),
        );
        const sink = sinks.sinks.get('127.0.0.2')!;
        assert.equal(sink.received.length, 12);
        assert.ok(sink.peakConnections <= 3, `${sink.peakConnections} connections at once`);
      },
      { maxConnections: 3, maxConnectionsPerDomain: 3 },
    ));
});
