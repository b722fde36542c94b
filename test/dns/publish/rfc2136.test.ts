// RFC 2136 updates signed with TSIG, against a real authoritative server
// (Knot DNS on loopback), read back with real DNS queries.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { UserError } from '../../../src/common/errors.ts';
import { generateKey } from '../../../src/keys/key-material.ts';
import { txtRecord } from '../../../src/keys/record.ts';
import { addRecord, deleteRecord, replaceRecord, type RecordChange } from '../../../src/dns/publish/change.ts';
import { rfc2136Publisher } from '../../../src/dns/publish/rfc2136.ts';
import { readTsigKey } from '../../../src/dns/publish/tsig.ts';
import { startKnotPrimary, type KnotPrimary } from '../../helpers/knot-primary.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { skipWithout } from '../../helpers/tools.ts';

const ZONE = 'example.com';
const rsa = generateKey('rsa', 2048);
const key = { domain: ZONE, selector: 's202611a', algorithm: 'rsa' as const, publicData: rsa.publicData };
const pending = txtRecord({ ...key, state: 'pending' });
const revoked = txtRecord({ ...key, state: 'revoked' });

function secretFile(dir: string, name: string, secret: string, mode = 0o600): string {
  const file = join(dir, name);
  writeFileSync(file, `${secret}\n`);
  chmodSync(file, mode);
  return file;
}

describe('rfc2136 publisher against Knot DNS', { skip: skipWithout('knotd', 'knotc') }, () => {
  const dir = tempDir();
  let knot: KnotPrimary;
  let publisher: ReturnType<typeof rfc2136Publisher>;
  const publisherWith = (secret: string, extra: { now?: () => number; name?: string } = {}) =>
    rfc2136Publisher({
      server: { host: '127.0.0.1', port: knot.port },
      tsig: { name: extra.name ?? knot.tsig.name, algorithm: 'hmac-sha256', secretFile: secret },
      timeoutMs: 3000,
      ...(extra.now ? { now: extra.now } : {}),
    });

  before(async () => {
    knot = await startKnotPrimary({ [ZONE]: [], 'example.org': [] }, { readOnly: ['example.org'] });
    publisher = publisherWith(secretFile(dir, 'tsig.key', knot.tsig.secret));
  });
  after(() => knot.stop());

  test("adding a 2048-bit key's record publishes it, split into strings of at most 255 octets", async () => {
    assert.ok(pending.strings.length >= 3, 'a 2048-bit p= needs more than one string');
    const serial = await knot.serial(ZONE);
    assert.deepEqual(await publisher.publish(ZONE, [addRecord({ ...pending, type: 'TXT' })]), { status: 'published' });
    assert.deepEqual(await knot.txt(pending.name), [pending.value]);
    assert.ok((await knot.serial(ZONE)) > serial);
  });

  test('replacing the record with its revoked form (empty p=) leaves exactly that record', async () => {
    const result = await publisher.publish(ZONE, replaceRecord({ ...pending, type: 'TXT' }, { ...revoked, type: 'TXT' }));
    assert.deepEqual(result, { status: 'published' });
    assert.deepEqual(await knot.txt(revoked.name), [`v=DKIM1; k=rsa; p=`]);
  });

  test('deleting the record withdraws it, and leaves other records at the name alone', async () => {
    const other: RecordChange = { action: 'add', name: revoked.name, type: 'TXT', ttl: 300, value: 'published by hand', strings: ['published by hand'] };
    assert.equal((await publisher.publish(ZONE, [other])).status, 'published');
    assert.deepEqual(await publisher.publish(ZONE, [deleteRecord({ ...revoked, type: 'TXT' })]), { status: 'published' });
    assert.deepEqual(await knot.txt(revoked.name), ['published by hand']);
    assert.equal((await publisher.publish(ZONE, [{ ...other, action: 'delete' }])).status, 'published');
    assert.deepEqual(await knot.txt(revoked.name), []);
  });

  test('a wrong TSIG secret is refused in one line and the zone is unchanged', async () => {
    const wrong = publisherWith(secretFile(dir, 'wrong.key', Buffer.alloc(32, 7).toString('base64')));
    const serial = await knot.serial(ZONE);
    const result = await wrong.publish(ZONE, [addRecord({ ...pending, type: 'TXT' })]);
    assert.equal(result.status, 'failed');
    assert.ok(result.status === 'failed');
    assert.match(result.reason, /TSIG key refused by the server: check dns\.publish\[\]\.tsig.*\[BADSIG\]$/);
    assert.doesNotMatch(result.reason, /\n/);
    assert.equal(await knot.serial(ZONE), serial);
    assert.deepEqual(await knot.txt(pending.name), []);
  });

  test('a key name the server does not know is refused (BADKEY)', async () => {
    const stranger = publisherWith(join(dir, 'tsig.key'), { name: 'stranger' });
    const result = await stranger.publish(ZONE, [addRecord({ ...pending, type: 'TXT' })]);
    assert.ok(result.status === 'failed');
    assert.match(result.reason, /TSIG key refused by the server.*\[BADKEY\]$/);
  });

  test('a clock an hour off is refused (BADTIME): time signed with a fudge of 300 s', async () => {
    const late = publisherWith(join(dir, 'tsig.key'), { now: () => Date.now() + 3600_000 });
    const result = await late.publish(ZONE, [addRecord({ ...pending, type: 'TXT' })]);
    assert.ok(result.status === 'failed');
    assert.match(result.reason, /\[BADTIME\]$/);
    // Within the fudge it passes.
    const skewed = publisherWith(join(dir, 'tsig.key'), { now: () => Date.now() + 120_000 });
    assert.deepEqual(await skewed.publish(ZONE, [addRecord({ ...pending, type: 'TXT' })]), { status: 'published' });
    assert.equal((await publisher.publish(ZONE, [deleteRecord({ ...pending, type: 'TXT' })])).status, 'published');
  });

  test('a zone the key may not update is refused and unchanged', async () => {
    const serial = await knot.serial('example.org');
    const result = await publisher.publish('example.org', [
      { action: 'add', name: 's._domainkey.example.org', type: 'TXT', ttl: 300, value: 'v=DKIM1; p=', strings: ['v=DKIM1; p='] },
    ]);
    assert.ok(result.status === 'failed');
    assert.match(result.reason, /^update of zone example\.org at 127\.0\.0\.1:\d+ failed: TSIG key refused/);
    assert.equal(await knot.serial('example.org'), serial);
  });

  test('a zone the server does not serve: NOTAUTH', async () => {
    const result = await publisher.publish('example.net', [{ action: 'add', name: 'x.example.net', type: 'TXT', ttl: 300, value: 'x', strings: ['x'] }]);
    assert.ok(result.status === 'failed');
    assert.match(result.reason, /not authoritative for this zone.*\(NOTAUTH\)/);
  });

  test('a record outside the zone is refused before anything is sent', async () => {
    const result = await publisher.publish(ZONE, [{ action: 'add', name: 'x.example.org', type: 'TXT', ttl: 300, value: 'x', strings: ['x'] }]);
    assert.deepEqual(result, { status: 'failed', reason: `update of zone ${ZONE} at 127.0.0.1:${knot.port} failed: x.example.org is not in zone ${ZONE}` });
  });

  test('a secret file others can read, or none, is refused in one line and nothing is sent', async () => {
    const serial = await knot.serial(ZONE);
    const open = publisherWith(secretFile(dir, 'open.key', knot.tsig.secret, 0o644));
    const result = await open.publish(ZONE, [addRecord({ ...pending, type: 'TXT' })]);
    assert.ok(result.status === 'failed');
    assert.match(result.reason, /TSIG secret file .*open\.key of key dkim-relay-test is readable by others \(mode 0644\) — run: chmod 600 /);
    assert.doesNotMatch(result.reason, new RegExp(knot.tsig.secret.replace(/[+/=]/g, '\\$&')));
    const missing = await publisherWith(join(dir, 'absent.key')).publish(ZONE, [addRecord({ ...pending, type: 'TXT' })]);
    assert.ok(missing.status === 'failed');
    assert.match(missing.reason, /absent\.key of key dkim-relay-test is missing — create it with: keymgr -t/);
    assert.equal(await knot.serial(ZONE), serial);
  });

  test('no server listening: a one-line failure, not a crash', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const nobody = rfc2136Publisher({
      server: { host: '127.0.0.1', port },
      tsig: { name: knot.tsig.name, algorithm: 'hmac-sha256', secretFile: join(dir, 'tsig.key') },
      timeoutMs: 2000,
    });
    assert.deepEqual(await nobody.publish(ZONE, [addRecord({ ...pending, type: 'TXT' })]), {
      status: 'failed',
      reason: `update of zone ${ZONE} at 127.0.0.1:${port} failed: connection refused`,
    });
  });
});

describe('rfc2136 publisher with hmac-sha512', { skip: skipWithout('knotd', 'knotc') }, () => {
  test('Knot accepts an update signed with hmac-sha512', async () => {
    const dir = tempDir();
    const knot = await startKnotPrimary({ [ZONE]: [] }, { algorithm: 'hmac-sha512' });
    try {
      const publisher = rfc2136Publisher({
        server: { host: '127.0.0.1', port: knot.port },
        tsig: { name: knot.tsig.name, algorithm: 'hmac-sha512', secretFile: secretFile(dir, 'tsig.key', knot.tsig.secret) },
        timeoutMs: 3000,
      });
      assert.deepEqual(await publisher.publish(ZONE, [addRecord({ ...pending, type: 'TXT' })]), { status: 'published' });
      assert.deepEqual(await knot.txt(pending.name), [pending.value]);
    } finally {
      await knot.stop();
    }
  });
});

/** A TCP DNS server that answers every message with `rcode`, unsigned, or with a canned answer. */
async function fakeServer(answer: (query: Buffer) => Buffer): Promise<{ port: number; server: Server }> {
  const server = createServer((socket) => {
    socket.on('data', (data) => {
      const query = data.subarray(2, 2 + data.readUInt16BE(0));
      const reply = answer(query);
      const length = Buffer.alloc(2);
      length.writeUInt16BE(reply.length);
      socket.end(Buffer.concat([length, reply]));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, server };
}

/** The query's header with QR set, RCODE `rcode`, and no records. */
function unsignedReply(query: Buffer, rcode: number): Buffer {
  const reply = Buffer.alloc(12);
  query.copy(reply, 0, 0, 4);
  reply.writeUInt16BE(0x8000 | (query.readUInt16BE(2) & 0x7800) | rcode, 2);
  return reply;
}

describe('rfc2136 answers that Knot does not give here', () => {
  const dir = tempDir();
  const secret = secretFile(dir, 'tsig.key', Buffer.alloc(32, 3).toString('base64'));
  const change = addRecord({ ...pending, type: 'TXT' });

  for (const [rcode, expected] of [
    [0, /the answer is not signed with TSIG/],
    [2, /\(SERVFAIL\)/],
    [5, /the server does not allow updates for this zone from us \(REFUSED\)/],
    [10, /a record is outside the zone \(NOTZONE\): check dns\.publish\[\]\.zone/],
  ] as const) {
    test(`RCODE ${rcode} unsigned: ${expected.source}`, async () => {
      const { port, server } = await fakeServer((q) => unsignedReply(q, rcode));
      try {
        const publisher = rfc2136Publisher({
          server: { host: '127.0.0.1', port },
          tsig: { name: 'k', algorithm: 'hmac-sha256', secretFile: secret },
          timeoutMs: 2000,
        });
        const result = await publisher.publish(ZONE, [change]);
        assert.ok(result.status === 'failed', 'an unsigned answer is never a success');
        assert.match(result.reason, expected);
      } finally {
        server.close();
      }
    });
  }

  test('a server that never answers: bounded by the timeout', async () => {
    const sockets = new Set<Socket>();
    const server = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as { port: number }).port;
      const publisher = rfc2136Publisher({
        server: { host: '127.0.0.1', port },
        tsig: { name: 'k', algorithm: 'hmac-sha256', secretFile: secret },
        timeoutMs: 300,
      });
      assert.deepEqual(await publisher.publish(ZONE, [change]), {
        status: 'failed',
        reason: `update of zone ${ZONE} at 127.0.0.1:${port} failed: no answer within 0.3s`,
      });
    } finally {
      for (const socket of sockets) socket.destroy();
      server.close();
    }
  });
});

describe('readTsigKey', () => {
  const dir = tempDir();

  test('reads the key file keymgr -t writes', () => {
    const text = execFileSync('/usr/sbin/keymgr', ['-t', 'relay-key', 'hmac-sha512'], { encoding: 'utf8' });
    const secret = /secret: (\S+)/.exec(text)![1]!;
    const file = join(dir, 'keymgr.key');
    writeFileSync(file, text, { mode: 0o600 });
    const key = readTsigKey({ name: 'relay-key', algorithm: 'hmac-sha512', secretFile: file });
    assert.equal(key.secret.toString('base64'), secret);
    assert.throws(
      () => readTsigKey({ name: 'relay-key', algorithm: 'hmac-sha256', secretFile: file }),
      (err: unknown) =>
        err instanceof UserError &&
        /is a hmac-sha512 key, the configuration says hmac-sha256 — set dns\.publish\[\]\.tsig\.algorithm: hmac-sha512/.test(err.toLine()),
    );
  });

  test('reads a BIND key clause as tsig-keygen writes it, and a bare secret', () => {
    const secret = Buffer.alloc(32, 9).toString('base64');
    const bind = join(dir, 'bind.key');
    writeFileSync(bind, `key "relay-key" {\n\talgorithm hmac-sha256;\n\tsecret "${secret}";\n};\n`, { mode: 0o600 });
    assert.equal(readTsigKey({ name: 'relay-key', algorithm: 'hmac-sha256', secretFile: bind }).secret.toString('base64'), secret);
    const bare = secretFile(dir, 'bare.key', secret);
    assert.equal(readTsigKey({ name: 'relay-key', algorithm: 'hmac-sha256', secretFile: bare }).secret.toString('base64'), secret);
  });

  test('refuses a file without a base64 secret, and a group-readable one', () => {
    const junk = secretFile(dir, 'junk.key', 'not a secret at all');
    assert.throws(() => readTsigKey({ name: 'k', algorithm: 'hmac-sha256', secretFile: junk }), /holds no base64 secret/);
    const group = secretFile(dir, 'group.key', Buffer.alloc(32).toString('base64'), 0o640);
    assert.throws(() => readTsigKey({ name: 'k', algorithm: 'hmac-sha256', secretFile: group }), /readable by others \(mode 0640\)/);
  });
});
