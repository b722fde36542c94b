// RFC 3461 parameters are per recipient: NOTIFY and ORCPT ride on each RCPT
// TO. A message to 200 recipients whose parameters all differ goes upstream
// as one transaction carrying each one's own, not as 200 copies.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rawSession } from '../helpers/raw-smtp.ts';
import { startSink, startTestRelay } from '../helpers/relay-harness.ts';

const RECIPIENTS = 200;
const NOTIFY = ['SUCCESS', 'FAILURE', 'DELAY', 'NEVER', 'SUCCESS,FAILURE', 'FAILURE,DELAY'];
const params = (i: number) => ({ NOTIFY: NOTIFY[i % NOTIFY.length]!, ORCPT: `rfc822;original${i}@example.org` });

async function waitFor(what: string, done: () => boolean, ms = 30_000): Promise<void> {
  for (let i = 0; i < ms / 20; i++) {
    if (done()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('200 recipients with their own NOTIFY and ORCPT: one upstream transaction, each RCPT TO with its own parameters', async () => {
  const sink = await startSink();
  const relay = await startTestRelay(
    { delivery: { mode: 'queue', upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port } } },
    (store) => store.generate({ domain: 'example.com', algorithm: 'rsa', bits: 2048, activate: true }),
    { closeTimeoutMs: 2000 },
  );
  try {
    const body = `${'x'.repeat(76)}\r\n`.repeat(Math.ceil((1024 * 1024) / 78));
    const message = [
      'From: Payroll <payroll@example.com>',
      'To: undisclosed-recipients:;',
      'Subject: many',
      'Date: Sun, 22 Nov 2026 10:00:00 +0000',
      'Message-ID: <many@example.com>',
      '',
      body,
    ].join('\r\n');
    const session = await rawSession(relay.port);
    let replies = 1;
    const say = async (line: string, expect: RegExp) => {
      session.write(`${line}\r\n`);
      assert.match((await session.reply(++replies)) ?? '(none)', expect, line);
    };
    assert.match((await session.reply(1)) ?? '', /^220 /);
    await say('EHLO client.test', /^250[ -]/);
    await say('MAIL FROM:<payroll@example.com> RET=HDRS ENVID=many-1', /^250 /);
    for (let i = 0; i < RECIPIENTS; i++) await say(`RCPT TO:<r${i}@example.net> NOTIFY=${params(i).NOTIFY} ORCPT=${params(i).ORCPT}`, /^250 /);
    await say('DATA', /^354 /);
    await say(`${message}\r\n.`, /^250 2\.0\.0 Ok: queued as /);
    session.write('QUIT\r\n');

    await waitFor('delivery', () => relay.relay.queue!.index.depth().messages === 0);
    const octets = sink.received.reduce((sum, r) => sum + r.raw.length, 0);
    assert.equal(sink.received.length, 1, `transactions at the upstream: ${sink.received.length}, ${octets} octets`);
    const [got] = sink.received;
    assert.deepEqual(
      got!.to,
      Array.from({ length: RECIPIENTS }, (_, i) => `r${i}@example.net`),
    );
    assert.deepEqual([got!.mailArgs!.RET, got!.mailArgs!.ENVID], ['HDRS', 'many-1']);
    assert.deepEqual(
      got!.rcptArgs,
      Array.from({ length: RECIPIENTS }, (_, i) => params(i)),
    );
    assert.ok(octets < 1.1 * 1024 * 1024, `${octets} octets went upstream for a 1 MiB message`);
  } finally {
    await relay.close();
    await sink.close();
  }
});
