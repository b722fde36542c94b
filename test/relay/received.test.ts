// The Received: trace field (RFC 5321 §4.4) over real SMTP: its parts for a
// plain, an AUTH+STARTTLS and a multi-recipient session, its place on top,
// signatures that still verify under it, and listen.addReceived: false.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { hashPassword } from '../../src/access/passwords.ts';
import { verifyWithDkimpy, verifyWithMailDkim } from '../helpers/independent-verify.ts';
import { rawSession } from '../helpers/raw-smtp.ts';
import { BIN, dkimRelay, NODE } from '../cli/support.ts';
import { dkimFields, selfSignedCert, send, startSink, startTestRelay, tempDir, type Sink, type TestRelay } from '../helpers/relay-harness.ts';

const MESSAGE = [
  'From: Payroll <payroll@example.com>',
  'To: Alice <alice@example.net>',
  'Subject: Your payslip',
  'Date: Sun, 22 Nov 2026 10:00:00 +0000',
  'Message-ID: <r1@example.com>',
  '',
  'Hello Alice,',
  '',
].join('\r\n');

/** The header block's fields, unfolded, top to bottom. */
function fields(raw: Buffer): string[] {
  return raw
    .toString('latin1')
    .split('\r\n\r\n')[0]!
    .split(/\r\n(?![ \t])/);
}

/** The first field, unfolded, and its date checked to be now (RFC 5322 date-time after the last ";"). */
function received(raw: Buffer): string {
  const first = fields(raw)[0]!;
  assert.match(first, /^Received: /, 'the Received: field is the first header line');
  assert.match(first, /^[\x20-\x7e\r\n\t]+$/, 'printable ASCII only');
  for (const line of first.split('\r\n')) assert.ok(line.length <= 78, `folded: ${JSON.stringify(line)}`);
  const date = first.slice(first.lastIndexOf(';') + 1).trim();
  assert.match(date, /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}$/);
  assert.ok(Math.abs(Date.parse(date) - Date.now()) < 60_000, `the date is now: ${date}`);
  return first.replace(/\r\n[ \t]+/g, ' ');
}

/** The log id at the end of an accepted reply. */
function replyId(response: string): string {
  const id = /\[([0-9a-f]{12})\]\s*$/.exec(response)?.[1];
  assert.ok(id, `no id in ${response}`);
  return id;
}

/** One transaction over a raw connection, with the EHLO name we choose; the reply to DATA. */
async function rawTransaction(port: number, ehlo: string, to: string[]): Promise<string> {
  const s = await rawSession(port);
  try {
    const steps = [`EHLO ${ehlo}`, 'MAIL FROM:<payroll@example.com>', ...to.map((r) => `RCPT TO:<${r}>`), 'DATA'];
    let n = 1;
    assert.match((await s.reply(n))!, /^220 /);
    for (const line of steps) {
      s.socket.write(Buffer.from(`${line}\r\n`, 'utf8'));
      const reply = await s.reply(++n);
      assert.match(reply ?? 'no reply', /^(250|354)[ -]/, `${line} → ${reply}`);
    }
    s.write(`${MESSAGE}.\r\n`);
    return (await s.reply(++n, 20_000)) ?? 'no reply';
  } finally {
    s.socket.end('QUIT\r\n');
  }
}

describe('the Received: trace field', () => {
  let sink: Sink;
  let relay: TestRelay;
  let tlsRelay: TestRelay;
  let quiet: TestRelay;
  const dir = tempDir();
  const withKey = (store: TestRelay['store']) => {
    store.generate({ domain: 'example.com', algorithm: 'rsa', bits: 2048, activate: true });
  };

  before(async () => {
    sink = await startSink();
    const upstream = { delivery: { upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port } } };
    // Received listed to be signed: it must not be, or the field we add on top would break the signature.
    relay = await startTestRelay({ ...upstream, signing: { headers: ['From', 'To', 'Subject', 'Date', 'Received'] } }, withKey);
    tlsRelay = await startTestRelay(
      {
        ...upstream,
        listen: { tls: selfSignedCert(dir.path) },
        access: { networks: [], users: [{ name: 'exchange', password: await hashPassword('correct horse') }] },
      },
      withKey,
    );
    quiet = await startTestRelay({ ...upstream, listen: { addReceived: false } }, withKey);
  });
  after(async () => {
    await Promise.all([relay.close(), tlsRelay.close(), quiet.close()]);
    await sink.close();
    dir.remove();
  });

  test('plain session: from the EHLO name (address), by us, with ESMTP, id, for the one recipient; signature still verifies', async () => {
    const reply = await rawTransaction(relay.port, 'printer.example.com', ['alice@example.net']);
    assert.match(reply, /^250 /);
    const got = sink.received.at(-1)!.raw;
    assert.equal(
      received(got).replace(/; [^;]*$/, ''),
      `Received: from printer.example.com ([127.0.0.1]) by relay.test (dkim-relay) with ESMTP id ${replyId(reply)} for <alice@example.net>`,
    );
    assert.match(fields(got)[1]!, /^DKIM-Signature: /, 'above the signature');
    assert.doesNotMatch(dkimFields(got)[0]!.replace(/\s+/g, ''), /h=[^;]*received/i, 'Received is never signed');
    assert.deepEqual(await verifyWithDkimpy(got, relay.records()), [true]);
    assert.deepEqual(await verifyWithMailDkim(got, relay.records()), ['pass']);
  });

  test('AUTH after STARTTLS: with ESMTPSA', async () => {
    const result = await send({
      port: tlsRelay.port,
      from: 'payroll@example.com',
      to: ['alice@example.net'],
      raw: MESSAGE,
      tls: true,
      auth: { user: 'exchange', pass: 'correct horse' },
    });
    assert.equal(result.ok, true, JSON.stringify(result));
    const got = sink.received.at(-1)!.raw;
    const id = replyId(result.ok ? result.response : '');
    assert.match(
      received(got),
      new RegExp(`^Received: from [^\\s()]+ \\(\\[127\\.0\\.0\\.1\\]\\) by relay\\.test \\(dkim-relay\\) with ESMTPSA id ${id} for <alice@example\\.net>; `),
    );
    assert.deepEqual(await verifyWithDkimpy(got, tlsRelay.records()), [true]);
    assert.deepEqual(await verifyWithMailDkim(got, tlsRelay.records()), ['pass']);
  });

  test('several recipients: no "for", so no copy names the others', async () => {
    const reply = await rawTransaction(relay.port, '[127.0.0.1]', ['alice@example.net', 'bob@example.org']);
    assert.match(reply, /^250 /);
    const got = sink.received.at(-1)!.raw;
    assert.deepEqual(sink.received.at(-1)!.to, ['alice@example.net', 'bob@example.org']);
    const field = received(got);
    assert.match(
      field,
      new RegExp(`^Received: from \\[127\\.0\\.0\\.1\\] \\(\\[127\\.0\\.0\\.1\\]\\) by relay\\.test \\(dkim-relay\\) with ESMTP id ${replyId(reply)}; `),
    );
    assert.doesNotMatch(field, / for /);
    assert.deepEqual(await verifyWithDkimpy(got, relay.records()), [true]);
  });

  test('an EHLO name that is no domain (8-bit, parentheses, a semicolon) is written "unknown"', async () => {
    for (const ehlo of ['drücker.example', 'a(b)c.example', 'evil.example;X-Injected:yes']) {
      const reply = await rawTransaction(relay.port, ehlo, ['alice@example.net']);
      assert.match(reply, /^250 /, ehlo);
      assert.match(received(sink.received.at(-1)!.raw), /^Received: from unknown \(\[127\.0\.0\.1\]\) by relay\.test /, ehlo);
    }
  });

  test('listen.addReceived: false adds none', async () => {
    const result = await send({ port: quiet.port, from: 'payroll@example.com', to: ['alice@example.net'], raw: MESSAGE });
    assert.equal(result.ok, true, JSON.stringify(result));
    const got = sink.received.at(-1)!.raw;
    assert.match(fields(got)[0]!, /^DKIM-Signature: /);
    assert.equal(fields(got).filter((f) => /^received:/i.test(f)).length, 0);
    assert.deepEqual(await verifyWithDkimpy(got, quiet.records()), [true]);
  });
});

test('the sign command adds no Received: (it relays nothing)', async () => {
  const dir = tempDir();
  try {
    assert.equal((await dkimRelay(['keys', 'generate', '--domain', 'example.com', '--activate'], dir.path)).code, 0);
    const out = await new Promise<Buffer>((resolve, reject) => {
      const child = execFile(
        NODE,
        [BIN, 'sign'],
        { cwd: dir.path, env: { PATH: process.env.PATH, HOME: process.env.HOME }, encoding: 'buffer', timeout: 30_000 },
        (err, stdout, stderr) => {
          if (err) reject(new Error(`sign failed: ${stderr.toString()}`));
          else resolve(stdout);
        },
      );
      child.stdin!.end(MESSAGE);
    });
    assert.match(fields(out)[0]!, /^DKIM-Signature: /);
    assert.equal(fields(out).filter((f) => /^received:/i.test(f)).length, 0);
  } finally {
    dir.remove();
  }
});
