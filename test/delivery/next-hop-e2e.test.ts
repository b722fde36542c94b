// What a queued message is sent as follows the connection that carries it:
// signed while the smart host announced 8BITMIME (or SMTPUTF8), delivered
// after it stopped. Real SMTP over loopback, real keys; dkimpy and our own
// verifier check what the sink got, Python's email package decodes it.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import type { SMTPServerOptions } from 'smtp-server';
import { storeResolver } from '../../src/keys/resolver.ts';
import { verifyMessage } from '../../src/signing/verify.ts';
import { only, parseWithPython } from '../bounce/support.ts';
import { verifyWithDkimpy } from '../helpers/independent-verify.ts';
import { dkimFields, send, startTestRelay, type TestRelay } from '../helpers/relay-harness.ts';
import { MESSAGE, startUpstream, withKey, type TestUpstream } from './upstreams.ts';

const FROM = 'payroll@example.com';
const has8bit = (raw: Buffer): boolean => raw.some((b) => b >= 0x80);
const FOREIGN = 'DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=foreign.example; s=sel;\r\n h=from:subject; bh=AAAA; b=AAAA';

interface Delivery {
  from: string;
  to: string[];
  raw: Buffer;
  bodyType: string;
  /** The message as the queue held it (queue.db, or its spool file) while this delivery was made. */
  spool: Buffer | null;
}

/** A smart host that answers DATA 451 while `refusing`, else records the message. */
interface Host {
  up: TestUpstream;
  deliveries: Delivery[];
  refusals: number;
  refusing: boolean;
  options: SMTPServerOptions;
}

async function startHost(options: Partial<SMTPServerOptions>, spoolOf: () => Buffer | null): Promise<Host> {
  const host = { deliveries: [], refusals: 0, refusing: true } as unknown as Host;
  host.up = await startUpstream({
    ...options,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        if (host.refusing && session.envelope.mailFrom && session.envelope.mailFrom.address !== '') {
          host.refusals++;
          return callback(Object.assign(new Error('4.3.0 Try again later'), { responseCode: 451 }));
        }
        host.deliveries.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks),
          bodyType: session.envelope.bodyType ?? '',
          spool: spoolOf(),
        });
        callback(null, 'Ok: queued');
      });
    },
  });
  host.options = host.up.server.options as SMTPServerOptions;
  return host;
}

/** The queued message stops fitting: the host no longer announces these, and the next delivery opens a new connection. */
function changeHost(host: Host, change: Partial<SMTPServerOptions>): void {
  Object.assign(host.options, change);
  host.up.dropConnections();
  host.refusing = false;
}

async function waitFor(what: string, done: () => boolean, ms = 20_000): Promise<void> {
  for (let i = 0; i < ms / 50; i++) {
    if (done()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out waiting for ${what}`);
}

async function withQueue(
  options: Partial<SMTPServerOptions>,
  queue: Record<string, unknown>,
  run: (host: Host, relay: TestRelay, queued: (id: string) => void) => Promise<void>,
): Promise<void> {
  let id: string | null = null;
  let relay: TestRelay | undefined;
  const host = await startHost(options, () => (id && relay ? queuedCopy(relay, id) : null));
  try {
    relay = await startTestRelay(
      {
        delivery: { mode: 'queue', upstream: { type: 'smtp', host: '127.0.0.1', port: host.up.port } },
        queue: { retryAfter: '1s', maxRetryInterval: '1s', ...queue },
      },
      withKey,
      { closeTimeoutMs: 2000 },
    );
    await run(host, relay, (queued) => (id = queued));
  } finally {
    await relay?.close();
    await host.up.close();
  }
}

async function submit(relay: TestRelay, to: string[], raw: string): Promise<string> {
  const answer = await send({ port: relay.port, from: FROM, to, raw });
  assert.ok(answer.ok, JSON.stringify(answer));
  const id = /queued as (\S+)/.exec(answer.response)?.[1];
  assert.ok(id, answer.response);
  return id;
}

/** The message as queued: in queue.db when small, else its file in msg/; null when gone. */
function queuedCopy(relay: TestRelay, id: string): Buffer | null {
  const queue = relay.relay.queue!;
  const path = queue.spool.path(id);
  return queue.index.octets(id) ?? (existsSync(path) ? readFileSync(path) : null);
}

function recipient(relay: TestRelay, id: string) {
  return relay.relay.queue!.index.show(id)?.recipients[0];
}

/** The decoded text of a single-part message, by Python's email package. */
function decodedText(raw: Buffer): string {
  const script =
    'import email,sys; m=email.message_from_bytes(sys.stdin.buffer.read()); sys.stdout.write(m.get_payload(decode=True).decode(m.get_content_charset()))';
  return execFileSync('/usr/bin/python3', ['-c', script], { input: raw }).toString('utf8');
}

describe('the form a queued message is sent in follows the connection that carries it', () => {
  test('signed as 8-bit, delivered after the host stopped announcing 8BITMIME: re-encoded to 7-bit and signed again, the spool copy untouched', () =>
    withQueue({}, {}, async (host, relay, queued) => {
      const raw = `${FOREIGN}\r\n${MESSAGE}`;
      const id = await submit(relay, ['alice@example.net'], raw);
      queued(id);
      await waitFor('the first attempt', () => host.refusals >= 1 && (recipient(relay, id)?.attempts ?? 0) >= 1);
      const spooled = queuedCopy(relay, id)!;
      assert.equal(has8bit(spooled), true, 'signed for a host that announced 8BITMIME: stored 8-bit');

      changeHost(host, { hide8BITMIME: true });
      await waitFor('the delivery', () => host.deliveries.length === 1);
      const got = host.deliveries[0]!;
      assert.equal(has8bit(got.raw), false, 'not one 8-bit octet to a connection without 8BITMIME');
      assert.equal(got.bodyType, '7bit');
      assert.equal(decodedText(got.raw), 'Grüße aus der Lohnbuchhaltung\r\n');
      assert.ok(got.spool?.equals(spooled), 'the spool copy is the one signed at intake while it is delivered');
      assert.match(got.raw.toString('latin1'), /^Received: from /, 'our Received: stays on top');
      const signatures = dkimFields(got.raw).map((f) => /\bd=([^;\s]+)/.exec(f)?.[1]);
      assert.deepEqual(signatures, ['example.com', 'foreign.example'], 'our old signature replaced by a new one; the foreign one kept');
      assert.deepEqual(await verifyWithDkimpy(got.raw, relay.records()), [true, false], 'dkimpy: ours passes (the foreign key is not published)');
      const ours = (await verifyMessage(got.raw, storeResolver(relay.store))).signatures.find((s) => s.domain === 'example.com');
      assert.equal(ours?.result, 'pass');
      await waitFor('the message to leave the queue', () => relay.relay.queue!.index.depth().messages === 0);
    }));

  test('an 8-bit envelope address to a host without SMTPUTF8: deferred (4.6.7), returned with 5.6.7 at queue.maxAge', () =>
    withQueue({ hideSMTPUTF8: true }, { maxAge: '4s' }, async (host, relay) => {
      host.refusing = false;
      const id = await submit(
        relay,
        ['jörg@example.net'],
        MESSAGE.replace('Content-Transfer-Encoding: 8bit', 'Content-Transfer-Encoding: 8bit\r\nX-Note: utf8 recipient'),
      );
      await waitFor('the first attempt', () => (recipient(relay, id)?.attempts ?? 0) >= 1);
      const first = recipient(relay, id)!;
      assert.equal(first.state, 'deferred', JSON.stringify(first));
      assert.match(JSON.stringify(first), /4\.6\.7/);
      await waitFor('the notice', () => host.deliveries.some((d) => d.from === ''), 20_000);
      assert.deepEqual(
        host.deliveries.filter((d) => d.from !== ''),
        [],
        'the message itself never went out',
      );
      const notice = host.deliveries.find((d) => d.from === '')!;
      const block = (await parseWithPython(notice.raw)).parts[1]!.blocks![1]!;
      assert.equal(only(block, 'Action'), 'failed');
      assert.equal(only(block, 'Status'), '5.6.7');
    }));

  test('the domain has no active key any more when a re-encoding is needed: deferred with the reason, never sent unsigned, returned at maxAge', () =>
    withQueue({}, { maxAge: '5s' }, async (host, relay, queued) => {
      const id = await submit(relay, ['alice@example.net'], MESSAGE);
      queued(id);
      await waitFor('the first attempt', () => host.refusals >= 1 && (recipient(relay, id)?.attempts ?? 0) >= 1);
      for (const key of relay.store.list('example.com')) relay.store.retire(key.domain, key.selector);

      changeHost(host, { hide8BITMIME: true });
      await waitFor('the second attempt', () => (recipient(relay, id)?.attempts ?? 0) >= 2 || relay.relay.queue!.index.show(id) === undefined);
      const second = recipient(relay, id);
      assert.ok(second, 'still queued');
      assert.equal(second.state, 'deferred');
      assert.match(JSON.stringify(second), /no active DKIM key for example\.com any more/);
      await waitFor('the notice', () => host.deliveries.some((d) => d.from === ''), 20_000);
      assert.deepEqual(
        host.deliveries.filter((d) => d.from !== ''),
        [],
        'nothing sent, signed or not',
      );
      const block = (await parseWithPython(host.deliveries.find((d) => d.from === '')!.raw)).parts[1]!.blocks![1]!;
      assert.equal(only(block, 'Action'), 'failed');
    }));
});
