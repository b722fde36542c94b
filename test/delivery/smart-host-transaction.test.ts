// The smart host's transactions: the message's octets written as they are,
// by BDAT where the host announces CHUNKING (RFC 3030), else dot-stuffed
// after DATA exactly as nodemailer's client would (RFC 5321 §4.5.2), over
// connections kept between messages and reset only after a refusal.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { pino } from 'pino';
import { configSchema } from '../../src/config/schema.ts';
import { SmtpUpstream } from '../../src/delivery/smtp-upstream.ts';
import { DotStuffing, PIPELINED_BDAT_MAX } from '../../src/delivery/transaction.ts';
import { storeResolver } from '../../src/keys/resolver.ts';
import { bufferOctets, joinOctets } from '../../src/message/octets.ts';
import { verifyMessage } from '../../src/signing/verify.ts';
import { verifyWithDkimpy } from '../helpers/independent-verify.ts';
import { send, startTestRelay } from '../helpers/relay-harness.ts';
import { MESSAGE, startChunkingUpstream, startUpstream, withKey } from './upstreams.ts';

const ROOT = join(import.meta.dirname, '..', '..');

function smartHost(port: number): SmtpUpstream {
  const config = configSchema.parse({ delivery: { upstream: { type: 'smtp', host: '127.0.0.1', port, maxConnections: 1, timeoutSeconds: 5 } } }).delivery
    .upstream;
  return new SmtpUpstream(config as Extract<typeof config, { type: 'smtp' }>, pino({ level: 'silent' }));
}

/** Lines a DATA transfer would have to stuff, and 8-bit octets. */
const DOTTED = Buffer.from(MESSAGE + '.\r\n..two dots\r\n. \r\nlast line\r\n');

test('a smart host announcing CHUNKING gets each message by BDAT, octets as they are, over one kept connection, RSET only after a refusal', async () => {
  const up = await startChunkingUpstream();
  const upstream = smartHost(up.port);
  try {
    await upstream.ready();
    const probe = up.commands.at(-1)!.connection; // the extension probe's own connection
    const message = bufferOctets(DOTTED);
    const first = await upstream.deliver({ from: 'payroll@example.com', to: ['alice@example.net'] }, message);
    assert.equal(first.code, 250);
    assert.equal(first.command, 'BDAT');
    const refused = await upstream.deliver({ from: 'payroll@example.com', to: ['nobody@example.net'] }, message);
    assert.deepEqual([refused.code, refused.enhanced], [550, '5.1.1']);
    const second = await upstream.deliver({ from: 'payroll@example.com', to: ['bob@example.net', 'nobody2@example.net'] }, message);
    assert.deepEqual(
      second.recipients.map((r) => [r.address, r.reply.code]),
      [
        ['bob@example.net', 250],
        ['nobody2@example.net', 550],
      ],
    );

    assert.deepEqual(
      up.received.map((r) => r.to),
      [['alice@example.net'], ['bob@example.net']],
    );
    for (const got of up.received) assert.ok(got.raw.equals(DOTTED), 'the octets arrive exactly as given: BDAT is not dot-stuffed');
    const delivery = up.commands.filter((c) => c.connection !== probe).map((c) => c.line.split(' ')[0]!.toUpperCase());
    assert.equal(new Set(up.commands.filter((c) => c.connection !== probe).map((c) => c.connection)).size, 1, 'one connection carries them all');
    assert.deepEqual(
      delivery.filter((verb) => verb !== 'EHLO'),
      ['MAIL', 'RCPT', 'BDAT', 'MAIL', 'RCPT', 'BDAT', 'RSET', 'MAIL', 'RCPT', 'RCPT', 'BDAT'],
      'no DATA; RSET only after the transaction that every recipient refused',
    );

    // The host drops the kept connection: the next message takes a new one, and nobody hears of it.
    up.dropConnections();
    const after = await upstream.deliver({ from: 'payroll@example.com', to: ['carol@example.net'] }, message);
    assert.equal(after.code, 250, after.text);
    assert.equal(up.received.length, 3);
  } finally {
    await upstream.close();
    await up.close();
  }
});

test('a message larger than a pipelined BDAT should carry goes by DATA to a CHUNKING host: a refused envelope costs no body', async () => {
  const up = await startChunkingUpstream(true);
  const upstream = smartHost(up.port);
  try {
    await upstream.ready();
    const probe = up.commands.at(-1)!.connection;
    const line = 'x'.repeat(76) + '\r\n';
    const big = Buffer.from(MESSAGE + line.repeat(Math.ceil(PIPELINED_BDAT_MAX / line.length) + 1));
    const refused = await upstream.deliver({ from: 'payroll@example.com', to: ['nobody@example.net'] }, bufferOctets(big));
    assert.deepEqual([refused.code, refused.enhanced], [550, '5.1.1']);
    const taken = await upstream.deliver({ from: 'payroll@example.com', to: ['alice@example.net'] }, bufferOctets(big));
    assert.equal(taken.code, 250, taken.text);
    assert.equal(taken.command, 'DATA');
    assert.equal(up.received.length, 1);
    assert.ok(up.received[0]!.raw.equals(big), 'the octets arrive exactly as given');
    const verbs = up.commands.filter((c) => c.connection !== probe).map((c) => c.line.split(' ')[0]!.toUpperCase());
    assert.ok(!verbs.includes('BDAT'), verbs.join(' '));
  } finally {
    await upstream.close();
    await up.close();
  }
});

test('DATA: dot-stuffed and ended exactly as nodemailer writes it, whatever the chunking; the host gets the octets back', async () => {
  const { default: DataStream } = (await import(join(ROOT, 'node_modules/nodemailer/dist/esm/smtp-connection/data-stream.js'))) as {
    default: new () => NodeJS.ReadWriteStream;
  };
  const alphabet = Buffer.from('\r\n.a\r\n.');
  let seed = 21;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let round = 0; round < 300; round++) {
    // Never empty: nodemailer ends an empty message with an empty line too, where a lone "." is enough.
    const input = Buffer.from(Array.from({ length: 1 + random(60) }, () => alphabet[random(alphabet.length)]!));
    const chunks: Buffer[] = [];
    for (let at = 0; at < input.length;) {
      const size = 1 + random(8);
      chunks.push(input.subarray(at, at + size));
      at += size;
    }
    const stuffing = new DotStuffing();
    const ours = Buffer.concat([...chunks.flatMap((c) => stuffing.push(c)), stuffing.end()]);
    const theirs: Buffer[] = [];
    await pipeline(
      Readable.from(chunks.length ? chunks : [Buffer.alloc(0)]),
      new DataStream(),
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          theirs.push(chunk);
          done();
        },
      }),
    );
    assert.equal(ours.toString('latin1'), Buffer.concat(theirs).toString('latin1'), `input ${JSON.stringify(input.toString('latin1'))}`);
  }

  const up = await startUpstream();
  const upstream = smartHost(up.port);
  try {
    await upstream.ready();
    const reply = await upstream.deliver({ from: 'payroll@example.com', to: ['alice@example.net'] }, bufferOctets(DOTTED));
    assert.deepEqual([reply.code, reply.command], [250, 'DATA']);
    assert.ok(up.received[0]!.raw.equals(DOTTED), 'smtp-server undoes the stuffing: the octets as given');
  } finally {
    await upstream.close();
    await up.close();
  }
});

test('a message held in memory in parts goes out whole, by DATA and by BDAT, wherever the parts are cut (a CRLF split, a dot starting a part)', async () => {
  // Cut points: inside a CRLF, just before a line's dot, at the very ends.
  const cuts = [0, 1, DOTTED.indexOf('\r\n.') + 1, DOTTED.indexOf('\r\n.') + 2, DOTTED.indexOf('..'), DOTTED.length - 1, DOTTED.length];
  const inParts = (a: number, b: number) => joinOctets(...[DOTTED.subarray(0, a), DOTTED.subarray(a, b), DOTTED.subarray(b)].map(bufferOctets));
  for (const start of [startUpstream, startChunkingUpstream]) {
    const up = await start();
    const upstream = smartHost(up.port);
    try {
      await upstream.ready();
      for (const a of cuts) {
        for (const b of cuts.filter((c) => c >= a)) {
          const reply = await upstream.deliver({ from: 'payroll@example.com', to: ['alice@example.net'] }, inParts(a, b));
          assert.equal(reply.code, 250, reply.text);
          assert.ok(up.received.at(-1)!.raw.equals(DOTTED), `${reply.command}, parts cut at ${a} and ${b}`);
        }
      }
    } finally {
      await upstream.close();
      await up.close();
    }
  }
});

test('the relay signs, then sends by BDAT: the signature verifies (dkimpy and our own) on what the host got, lines with dots and all', async () => {
  const up = await startChunkingUpstream();
  const relay = await startTestRelay({ delivery: { upstream: { type: 'smtp', host: '127.0.0.1', port: up.port } } }, withKey);
  try {
    const result = await send({ port: relay.port, from: 'payroll@example.com', to: ['alice@example.net'], raw: DOTTED.toString() });
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.equal(up.received.length, 1);
    assert.ok(up.commands.some((c) => /^BDAT \d+ LAST$/.test(c.line)));
    const got = up.received[0]!.raw;
    assert.match(got.toString('latin1'), /\r\n\.\.two dots\r\n/, 'a line starting with dots arrives as it was written');
    assert.deepEqual(await verifyWithDkimpy(got, relay.records()), [true]);
    assert.deepEqual(
      (await verifyMessage(got, storeResolver(relay.store))).signatures.map((s) => s.result),
      ['pass'],
    );
  } finally {
    await relay.close();
    await up.close();
  }
});
