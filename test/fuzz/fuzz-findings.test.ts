// Minimal reproducers of what the SMTP fuzzer found, one test each, against
// the same relay set-up (test/fuzz/fuzz-run.ts). Each fails while its bug is
// there and passes once it is fixed; the fuzz run finds the same problems at
// random, these find them every time and say precisely what is wrong.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTarget, type Target } from './fuzz-run.ts';
import { gc, heapAfterGc } from './resources.ts';
import { isAcceptAfterData } from './sessions.ts';
import { RawSmtpClient, type Reply } from './smtp-client.ts';

/** A session from 127.0.0.2 (admitted, no `clients` restriction), greeted and EHLO done. */
async function session(target: Target): Promise<RawSmtpClient> {
  const client = await RawSmtpClient.connect({ port: target.port, localAddress: '127.0.0.2' });
  const greeting = await client.readReply(5000);
  assert.equal(greeting?.code, 220, `greeting: ${greeting?.raw}`);
  const ehlo = await client.command('EHLO fuzz.example', 5000);
  assert.equal(ehlo?.code, 250, `EHLO: ${ehlo?.raw}`);
  return client;
}

/** MAIL, RCPT, DATA and `message` (already dot-safe, CRLF-terminated); the reply to the final dot and how long it took. */
async function transaction(client: RawSmtpClient, rcpt: string, message: Buffer | string, timeoutMs = 30_000): Promise<{ reply: Reply | null; ms: number }> {
  assert.equal((await client.command('MAIL FROM:<app@example.com>', 5000))?.code, 250);
  assert.equal((await client.command(`RCPT TO:<${rcpt}>`, 5000))?.code, 250);
  assert.equal((await client.command('DATA', 5000))?.code, 354);
  const started = Date.now();
  await client.write(typeof message === 'string' ? Buffer.from(message, 'latin1') : message);
  await client.write('.\r\n');
  const reply = await client.readReply(timeoutMs);
  return { reply, ms: Date.now() - started };
}

describe('what the SMTP fuzzer found', { timeout: 120_000 }, () => {
  let target: Target;
  before(async () => {
    target = await startTarget();
  });
  after(async () => {
    await target?.close();
  });

  test('two whole transactions in one TCP write: the relay still answers the next command', async () => {
    // smtp-server's SMTPStream.continue() runs the saved continuation and then clears it; when the
    // continuation itself parses the second transaction to its final dot (every handler answers
    // synchronously, as onMailFrom/onRcptTo in src/relay/envelope-policy.ts do), the second message's
    // continuation is saved and then wiped, and the session reads nothing more until the idle timeout.
    const client = await session(target);
    try {
      const txn = (n: number) =>
        `MAIL FROM:<app@example.com>\r\nRCPT TO:<fz800000000t${n}q0@example.net>\r\nDATA\r\nFrom: <app@example.com>\r\nSubject: pipelined ${n}\r\n\r\nbody\r\n.\r\n`;
      await client.write(txn(1) + txn(2));
      const replies = await client.readReplies(8, 10_000);
      assert.deepEqual(
        replies.map((r) => r.code),
        [250, 250, 354, 250, 250, 250, 354, 250],
      );
      const noop = await client.command('NOOP', 2000);
      assert.equal(noop?.code, 250, `NOOP after two pipelined transactions got ${noop ? noop.raw : 'no reply within 2 s'}`);
    } finally {
      await client.destroy();
    }
  });

  test('a header line with 8-bit bytes is refused with an ASCII-only reply', async () => {
    // pipeline.ts answers 554 "Malformed header: …" quoting the line with JSON.stringify, which keeps
    // octets ≥ 0x80 as they are; smtp-server writes the text as UTF-8. RFC 5321 reply text is ASCII.
    const client = await session(target);
    try {
      const { reply } = await transaction(client, 'fz800000001t0q0@example.net', 'X-8bit-\xe9: value\r\nFrom: <app@example.com>\r\n\r\nbody\r\n');
      assert.equal(reply?.code, 554);
      assert.deepEqual(client.malformed, [], `reply: ${reply?.raw}`);
    } finally {
      await client.destroy();
    }
  });

  test('a From: domain of thousands of labels costs neither time nor memory that stays', async () => {
    // KeyStore.signingDomainFor walks every suffix of the From: domain: labels.slice(i).join('.') for
    // each label (quadratic), one SQLite query each, and activeKeys() caches every miss in
    // activeByDomain for good. "a@example.com" + 100 000 dots (a 100 KB header) exhausts a 4 GB heap.
    const heapBefore = heapAfterGc();
    const client = await session(target);
    try {
      let slowest = 0;
      for (let n = 0; n < 3; n++) {
        const domain = `${`l${n}.`.repeat(2000)}example.com`;
        const { reply, ms } = await transaction(client, `fz800000002t${n}q0@example.net`, `From: <app@${domain}>\r\nSubject: labels\r\n\r\nbody\r\n`);
        assert.ok(reply, 'no reply');
        assert.ok(reply.code !== 451 || !/Local error/.test(reply.raw), reply.raw);
        slowest = Math.max(slowest, ms);
      }
      assert.ok(slowest < 250, `a message whose From: domain has 2 000 labels took ${slowest} ms`);
    } finally {
      await client.destroy();
    }
    const heapAfter = heapAfterGc();
    if (heapBefore !== null && heapAfter !== null) {
      const grown = (heapAfter - heapBefore) / 1048576;
      assert.ok(grown < 8, `heap after GC grew ${grown.toFixed(1)} MiB over three such messages (cached suffixes)`);
    }
  });

  test('a From: domain that is not a valid host name is refused for good, not tempfailed', async () => {
    // signingDomainFor finds example.com for "<80 a>.example.com" and signs with d=example.com, but
    // tldts (alignment.ts) rejects the over-long label, so the self-check says "not aligned" and the
    // client is told 451 (try again later): it retries a message that can never pass.
    const client = await session(target);
    try {
      for (const [n, domain] of [`${'a'.repeat(80)}.example.com`, `${'sub.'.repeat(70)}example.com`].entries()) {
        const { reply } = await transaction(client, `fz800000003t${n}q0@example.net`, `From: <app@${domain}>\r\nSubject: long domain\r\n\r\nbody\r\n`);
        assert.ok(reply && reply.code !== 451 && reply.code !== 421, `From: app@${domain.slice(0, 40)}… was answered ${reply?.raw ?? 'nothing'}`);
      }
    } finally {
      await client.destroy();
    }
  });

  test('a header with 40 000 folded lines does not block the event loop', async () => {
    // The self-check runs mailauth's dkimVerify, whose parseHeaders joins continuation lines with
    // rows[i - 1].concat(rows[i]) and rows.splice(i, 1) for each one: quadratic. 40 000 lines (160 KB)
    // take ~5 s, and headers.maxSize (1 MiB) allows 250 000: minutes during which no session is served.
    const client = await session(target);
    try {
      const message = `From: <app@example.com>\r\nX-Folded: start${'\r\n x'.repeat(40_000)}\r\n\r\nbody\r\n`;
      const { reply, ms } = await transaction(client, 'fz800000004t0q0@example.net', message);
      assert.ok(reply, 'no reply');
      assert.ok(ms < 1000, `40 000 folded header lines took ${ms} ms (${reply.raw})`);
    } finally {
      await client.destroy();
    }
  });

  test('a message far over listen.maxMessageSize is not buffered whole', async () => {
    // onData once kept every chunk and looked at the size only at 'end': a client could make the
    // relay hold as much memory as it cared to send (here 64 MiB against a 256 KiB limit). The client
    // pauses after each MiB: on loopback an unpaced sender outruns the relay, and the data in flight
    // inside smtp-server would blur what the handler keeps. Even so, freed buffers leave the count
    // lazily (up to ~16 MiB seen after a forced GC), hence a bound of half the message.
    const client = await session(target);
    try {
      assert.equal((await client.command('MAIL FROM:<app@example.com>', 5000))?.code, 250);
      assert.equal((await client.command('RCPT TO:<fz800000005t0q0@example.net>', 5000))?.code, 250);
      assert.equal((await client.command('DATA', 5000))?.code, 354);
      // Retained memory, not garbage: collect before each sample.
      const collect = gc();
      assert.ok(collect, 'gc() is needed to tell retained buffers from garbage');
      collect();
      const base = process.memoryUsage().arrayBuffers;
      let peak = 0;
      const sampler = setInterval(() => {
        collect();
        peak = Math.max(peak, process.memoryUsage().arrayBuffers - base);
      }, 100);
      try {
        const chunk = Buffer.from(`${'x'.repeat(78)}\r\n`.repeat(800));
        await client.write('From: <app@example.com>\r\n\r\n');
        for (let sent = 0; sent < 64 * 1048576; sent += chunk.length) {
          await client.write(chunk);
          if (sent % 1048576 < chunk.length) await new Promise((resolve) => setTimeout(resolve, 10));
        }
        await client.write('.\r\n');
        const reply = await client.readReply(30_000);
        assert.equal(reply?.code, 552, reply?.raw);
      } finally {
        clearInterval(sampler);
      }
      assert.ok(peak < 32 * 1048576, `memory in buffers grew by ${(peak / 1048576).toFixed(1)} MiB while a 64 MiB message was refused`);
    } finally {
      await client.destroy();
    }
  });

  test('an address with invalid UTF-8 is refused, not delivered to a different address', async () => {
    // smtp-server decodes the command line as UTF-8, so RCPT TO:<…@b\xfccher.example> becomes
    // "b\ufffdcher.example": accepted with 250, and the message goes out to that other address.
    const client = await session(target);
    try {
      assert.equal((await client.command('MAIL FROM:<app@example.com>', 5000))?.code, 250);
      const rcpt = await client.command(Buffer.from('RCPT TO:<fz800000006t0q0@b\xfccher.example>', 'latin1'), 5000);
      assert.ok(rcpt && rcpt.code >= 500, `RCPT with a raw 0xFC byte was answered ${rcpt?.raw}`);
    } finally {
      await client.destroy();
    }
  });

  test('sanity: a plain message is accepted and delivered', async () => {
    const client = await session(target);
    try {
      const before = target.sink.received.length;
      const { reply } = await transaction(client, 'fz800000007t0q0@example.net', 'From: <app@example.com>\r\nSubject: ok\r\n\r\nbody\r\n');
      assert.ok(reply && isAcceptAfterData(reply), reply?.raw);
      assert.equal(target.sink.received.length, before + 1);
    } finally {
      await client.destroy();
    }
  });
});
